"""Search strategies over one shared expansion core."""

from ttscale.search.base import STRATEGIES, SearchSettings, Strategy, build_strategy

__all__ = ["STRATEGIES", "SearchSettings", "Strategy", "build_strategy"]
