"""The learn loop on CPU (issue 10): search -> Monte Carlo step labels -> PRM -> better selection.

SmolLM2-135M samples N solutions on synthetic arithmetic; label-steps rolls out k
completions from each step prefix of the training problems' candidates; a PRM head
is trained on SmolLM2 itself; on held-out problems the same N samples are picked by
majority vote and by weighted best-of-N with the trained PRM. Every stage resumes
from --out, so an interrupted demo continues where it stopped.

    python bench/learn_demo.py [--out runs/learn_demo] [--train-run DIR] [--train-problems 12]
        [--test-problems 12] [--n 8] [--rollouts 4] [--max-steps 40]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import accuracy, rescore

from ttscale.cli import resolve_recipe
from ttscale.config import VerifierConfig, load_config
from ttscale.data.results import read_results
from ttscale.learn.common import correct_flags, read_rows
from ttscale.learn.labels import label_steps
from ttscale.learn.train import TrainSettings, train_prm
from ttscale.runner import run
from ttscale.verifiers.prm_format import LAYOUT_FILE
from ttscale.verifiers.trained_prm import TrainedPRM


def search(out: Path, seed: int, limit: int, n: int, levels: str, max_new_tokens: int) -> Path:
    cfg = load_config(resolve_recipe("cpu_arithmetic"), [
        f"dataset.seed={seed}", f"dataset.limit={limit}", f"dataset.levels={levels}", f"search.n={n}",
        "search.selection=majority", "search.problems_per_batch=4", f"sampling.max_new_tokens={max_new_tokens}",
        f"output.dir={out}",
    ])
    return run(cfg, progress=True).run_dir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/learn_demo")
    ap.add_argument("--train-run", help="an existing best_of_n run to label instead of searching")
    ap.add_argument("--train-problems", type=int, default=12)
    ap.add_argument("--test-problems", type=int, default=12)
    ap.add_argument("--levels", default="[1,2,3]")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=80)
    ap.add_argument("--rollouts", type=int, default=4)
    ap.add_argument("--rollout-tokens", type=int, default=48, help="token cap of one rollout")
    ap.add_argument("--max-per-problem", type=int, default=4)
    ap.add_argument("--max-steps", type=int, default=40)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--trainable-layers", type=int, default=4)
    args = ap.parse_args()
    out = Path(args.out)
    times: dict[str, float] = {}

    def stage(name, fn):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        value = fn()
        times[name] = time.perf_counter() - start
        print(f"[{name}] {times[name]:.0f} s", flush=True)
        return value

    train_run = Path(args.train_run) if args.train_run else stage(
        "search train", lambda: search(out / "train_run", 0, args.train_problems, args.n, args.levels, args.max_new_tokens))
    labels = stage("label-steps", lambda: label_steps(train_run, out / "labels", args.rollouts, "hard",
                                                      args.max_per_problem, max_new_tokens=args.rollout_tokens))
    flat = [v for row in read_rows(labels.output / "steps.jsonl") for v in row["labels"]]
    print(f"labels: {labels.n_rows} solutions, {len(flat)} steps, {sum(flat)} good", flush=True)
    prm = out / "prm"
    if not (prm / LAYOUT_FILE).is_file():
        settings = TrainSettings(max_steps=args.max_steps, learning_rate=args.lr, batch_size=8,
                                 trainable_layers=args.trainable_layers, device="cpu")
        trained = stage("train-prm", lambda: train_prm(labels.output, "embedded:smollm2", prm, settings))
        print(f"train-prm: {trained.trainer}, loss {trained.losses[0]:.3f} -> {trained.losses[-1]:.3f}", flush=True)
    test_run = stage("search held-out", lambda: search(out / "test_run", 1, args.test_problems, args.n, args.levels,
                                                       args.max_new_tokens))
    train_questions = {r.problem.question for r in read_results(train_run)}
    held_out = [r for r in read_results(test_run) if r.error is None and r.problem.question not in train_questions]
    verifier = TrainedPRM(VerifierConfig(name="trained_prm", model=str(prm), device="cpu"))
    scored = stage("score held-out", lambda: rescore(held_out, verifier, "\n"))

    n = args.n
    majority = accuracy(scored, "majority")
    print(f"\nheld-out problems: {len(scored)}, N={n}, SmolLM2-135M policy, PRM = SmolLM2 + trained head")
    print(f"{'name':<40} {'ours':>8} {'baseline':>9} {'ratio':>7}")
    for label, selection, reduction in (("weighted best-of-N, trained PRM (last)", "weighted", "last"),
                                        ("weighted best-of-N, trained PRM (min)", "weighted", "min"),
                                        ("naive best-of-N, trained PRM (last)", "naive", "last")):
        ours = accuracy(scored, selection, reduction)
        ratio = ours / majority if majority else float("nan")
        print(f"{label + f' @{n}':<40} {ours:>7.1f}% {majority:>8.1f}% {ratio:>6.2f}x  (baseline: majority @{n})")
    oracle = 100.0 * sum(any(correct_flags(r)) for r in scored) / max(len(scored), 1)
    print(f"{'pass@' + str(n) + ' (oracle ceiling)':<40} {oracle:>7.1f}%")
    print("stage times: " + ", ".join(f"{k} {v:.0f}s" for k, v in times.items()))


if __name__ == "__main__":
    main()
