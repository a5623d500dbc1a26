"""Budget forcing (s1) on a tiny reasoning model: thinking lengths with and without a budget.

The model is the test suite's tiny random Qwen3 (tests/search/test_thinking_models.py): its chat
template opens <think> and its lm_head is biased towards </think>, so it tries to close early, as
an under-thinking reasoning model does. Side by side in one run, best-of-N through `ttscale run`:
no budget, min_tokens only, max_tokens only, both. Per setting: thinking tokens per trace (min /
median / max), "Wait"s written per trace, the share of traces closed by force, and tokens per trace.

    PYTHONPATH=src python3 bench/thinking_budget.py [--problems 8] [--n 8] [--min 32] [--max 64]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "search"))

from test_thinking_models import tiny_qwen3

from ttscale.backends.hf import HFGenerator
from ttscale.config import ModelConfig
from ttscale.data.results import read_results
from ttscale.recipe import load_config
from ttscale.runner import run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", type=int, default=8)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--min", type=int, default=32)
    ap.add_argument("--max", type=int, default=64)
    ap.add_argument("--bias", default="9,0", help="lm_head biases of </think>, one model each (9: p about 0.15 a "
                    "token, an eager closer; 0: it almost never closes)")
    args = ap.parse_args()
    smol = HFGenerator(ModelConfig(name_or_path="embedded:smollm2", dtype="float32"))
    settings = {"no budget": [], f"min {args.min}": [f"sampling.thinking.min_tokens={args.min}"],
                f"max {args.max}": [f"sampling.thinking.max_tokens={args.max}"],
                f"min {args.min}, max {args.max}": [f"sampling.thinking.min_tokens={args.min}",
                                                    f"sampling.thinking.max_tokens={args.max}"]}
    print(f"tiny Qwen3 (random), {args.problems} problems x N={args.n}, best-of-N, float32, "
          "sampling.max_new_tokens=160")
    print(f"{'</think> bias':<14}{'setting':<18}{'thinking min':>13}{'median':>8}{'max':>6}{'Waits/trace':>13}"
          f"{'forced close':>14}{'tokens/trace':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        for bias in (float(b) for b in args.bias.split(",")):
            model = tiny_qwen3(smol, bias)
            for name, extra in settings.items():
                row(model, bias, name, extra, args, Path(tmp) / f"{bias}-{len(extra)}{name[:3]}")


def row(model: HFGenerator, bias: float, name: str, extra: list[str], args: argparse.Namespace, out: Path) -> None:
    cfg = load_config(None, [
        "model.backend=hf", "dataset.source=synthetic:arithmetic", f"dataset.limit={args.problems}",
        "prompt.mode=chat", "search.strategy=best_of_n", f"search.n={args.n}", "sampling.temperature=1.0",
        "sampling.max_new_tokens=160", "verifier.name=none", f"output.dir={out}", *extra])
    run(cfg, generator=model, progress=False)
    cs = [c for r in read_results(cfg.output.dir) for c in r.completions]
    lengths = [c.thinking_tokens for c in cs]
    waits = [c.text.split("</think>", 1)[0].count("Wait") for c in cs]
    forced = sum("</think>" + cfg.sampling.thinking.answer_cue in c.text for c in cs)
    print(f"{bias:<14g}{name:<18}{min(lengths):>13}{statistics.median(lengths):>8.0f}{max(lengths):>6}"
          f"{statistics.mean(waits):>13.2f}{100 * forced / len(cs):>13.0f}%{statistics.mean(c.n_tokens for c in cs):>14.1f}")


if __name__ == "__main__":
    main()
