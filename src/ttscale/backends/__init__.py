"""Generator backends, registered by name; heavy ones import lazily."""

from ttscale.backends.base import GENERATORS, Generator, build_generator

__all__ = ["GENERATORS", "Generator", "build_generator"]
