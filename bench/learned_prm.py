"""The paper's loop on CPU: Monte Carlo step labels -> a PRM head on SmolLM2 -> its signal.

1. SmolLM2-135M samples N solutions to generated training problems (seed --train-seed);
2. for the Monte Carlo sources, `label-steps` rolls out k completions from every step prefix of a few
   candidates per problem (or --labels reuses a label-steps output of that run, e.g. one made for
   bench/label_quality.py);
3. `train-prm` trains a 2-class head (and the last blocks; with --fit head, the head alone on the frozen
   body's features) on SmolLM2 itself, once per label source in
   --train-on: Math-Shepherd's hard labels, the soft Monte Carlo value, every candidate's own outcome on
   all its steps (no rollouts: more prefixes for the same tokens), the hard labels with the last step of
   every other candidate labelled by its own answer (`hard+last`), every right candidate's steps with each
   of them also copied with one number changed and labelled bad (`perturbed`, learn/perturb.py; no
   rollouts), the hard labels with those rows (`hard+perturbed`), or the rule verifier's own step
   labels (an oracle: what this model and this much data can learn when the labels are right);
4. on held-out problems (seed --test-seed, questions seen in training dropped) the same
   policy samples N solutions, and every step is scored by each trained PRM and by the
   rule verifier: the PRM's step accuracy and AUC against the rule labels, beside the
   majority-label baseline; then majority vs weighted best-of-N with each verifier.

Every stage resumes from --out. The defaults took 20 minutes on one core with --dtype bfloat16
(AVX512-BF16; float32 is about 2.5x slower to sample): sampling 40 x 8 solutions 2 min, label-steps
7 min (160 solutions, 577 steps), train-prm 8 min, held-out sampling and scoring 3 min. The trained
PRM then plugs into search with recipes/cpu_arithmetic_trained_prm.yaml.

    python bench/learned_prm.py [--out runs/learned_prm] [--wording alt] [--levels [1,2,3,4]] [--train-problems 40]
        [--test-problems 30] [--n 8] [--rollouts 4] [--label-temperature T] [--max-per-problem 4] [--max-steps 150]
        [--dtype float32] [--labels LABEL_DIR ...] [--train-runs RUN_DIR ...] [--fit head] [--head-l2 1.0]
        [--train-on hard,soft,outcome,hard+last,perturbed,hard+perturbed,rules]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import accuracy, claim_out, provenance, rescore

from ttscale.cli import resolve_recipe
from ttscale.config import VerifierConfig
from ttscale.data.results import read_results
from ttscale.grading import correct_flags
from ttscale.learn.agreement import label_quality, rule_label, rule_labels, step_agreement, within_problem_auc
from ttscale.learn.common import read_rows
from ttscale.learn.labels import SETTINGS, label_steps
from ttscale.learn.perturb import Solution, perturbed_rows, solutions
from ttscale.learn.train import TrainSettings, train_prm
from ttscale.recipe import load_config
from ttscale.runner import run
from ttscale.types import ProblemResult
from ttscale.verifiers.arithmetic import NO_ARITHMETIC, ArithmeticRulesVerifier
from ttscale.verifiers.prm_format import LAYOUT_FILE
from ttscale.verifiers.trained_prm import TrainedPRM

DELIMITER = "\n"


def sample(out: Path, seed: int, args: argparse.Namespace, limit: int) -> Path:
    cfg = load_config(resolve_recipe("cpu_arithmetic"), [
        f"dataset.seed={seed}", f"dataset.limit={limit}", f"dataset.levels={args.levels}",
        f"dataset.wording={args.wording}", f"search.n={args.n}", "search.selection=majority",
        "search.problems_per_batch=4", f"sampling.max_new_tokens={args.max_new_tokens}", f"model.dtype={args.dtype}",
        f"output.dir={out}",
    ])
    return run(cfg, progress=True).run_dir


def step_scores(results: list[ProblemResult]) -> list[list[float]]:
    return [list(c.step_scores or ()) for r in results for c in r.completions]


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fresh", action="store_true", help="discard rows in --out that other code wrote")
    ap.add_argument("--out", default="runs/learned_prm")
    ap.add_argument("--wording", default="alt", choices=("exemplar", "alt"))
    ap.add_argument("--levels", default="[1,2,3,4]")
    ap.add_argument("--train-seed", type=int, default=1000, help="generation seed of the training problems")
    ap.add_argument("--test-seed", type=int, default=2000, help="generation seed of the held-out problems")
    ap.add_argument("--train-problems", type=int, default=40)
    ap.add_argument("--test-problems", type=int, default=30)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                    help="the policy's (sampling and rollouts); bfloat16 is about 2.5x faster where the CPU has AVX512-BF16")
    ap.add_argument("--labels", nargs="+", help="label-steps outputs to train on, pooled (skips sampling and "
                    "labelling; their runs are the train runs)")
    ap.add_argument("--train-runs", nargs="+", default=[],
                    help="more runs of training problems whose candidates the candidate sources (outcome, "
                    "perturbed, rules) use beside the labels' runs")
    ap.add_argument("--test-run", help="a run of held-out problems to score instead of sampling one (e.g. an earlier "
                    "report's, so PRMs trained apart are scored on the same samples)")
    ap.add_argument("--train-on", default="hard",
                    help="label sources, one PRM each: " + ", ".join(SOURCES) + " (rules is an oracle ceiling)")
    ap.add_argument("--rollouts", type=int, default=4)
    ap.add_argument("--label-temperature", type=float, default=None,
                    help="the rollouts' temperature (label-steps --temperature; default: the run's)")
    ap.add_argument("--rollout-tokens", type=int, default=48, help="token cap of one rollout")
    ap.add_argument("--max-per-problem", type=int, default=4)
    ap.add_argument("--max-steps", type=int, default=150)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--trainable-layers", type=int, default=4, help="fit=finetune: the blocks trained besides the head")
    ap.add_argument("--fit", default="finetune", choices=("finetune", "head"),
                    help="head: the body frozen, the head fitted on its features by L-BFGS (learn/head_fit.py)")
    ap.add_argument("--head-l2", type=float, default=TrainSettings.head_l2, help="fit=head: the head's L2 penalty")
    return ap.parse_args()


def main() -> None:
    args = parse()
    unknown = [x for x in args.train_on.split(",") if x and x not in SOURCES]
    if unknown:
        raise SystemExit(f"--train-on {unknown[0]!r} is unknown; accepted: {', '.join(SOURCES)}")
    if args.train_seed == args.test_seed:
        raise SystemExit("--train-seed and --test-seed must differ: held-out problems are another seed's")
    out, times = Path(args.out), {}
    claim_out(out, args.fresh)
    print(provenance(), flush=True)

    def stage(name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = fn()
        times[name] = time.perf_counter() - start
        print(f"[{name}] {times[name]:.0f} s", flush=True)
        return value

    sources = [x for x in args.train_on.split(",") if x]
    label_dirs = [Path(x) for x in args.labels or []]
    if label_dirs:  # the labels belong to the runs they were made from, whatever --train-* say
        train_runs = [Path(json.loads((d / SETTINGS).read_text(encoding="utf-8"))["run_dir"]) for d in label_dirs]
    else:
        train_runs = [stage("sample train", lambda: sample(out / "train_run", args.train_seed, args,
                                                           args.train_problems))]
    labelled: list[dict[str, Any]] = []
    if set(sources) & set(MONTE_CARLO):
        label_dirs = label_dirs or [stage("label-steps", lambda: label_steps(
            train_runs[0], out / "labels", args.rollouts, "soft", args.max_per_problem,
            max_new_tokens=args.rollout_tokens, temperature=args.label_temperature)).output]
        labelled = [row for d in label_dirs for row in read_rows(d / "steps.jsonl")]
        flat = [v for row in labelled for v in row["mc_values"]]
        print(f"labels ({', '.join(map(str, label_dirs))}): {len(labelled)} solutions, {len(flat)} steps, "
              f"{sum(v > 0 for v in flat)} good (hard)", flush=True)
        report_labels(labelled)
    train_runs += [Path(x) for x in args.train_runs if Path(x).resolve() not in {r.resolve() for r in train_runs}]
    train_results = [r for run in train_runs for r in read_results(run)]
    candidates = candidate_rows(train_results)
    print(f"train runs ({', '.join(map(str, train_runs))}): {len(candidates)} distinct candidates, "
          f"{sum(len(r['completions']) for r in candidates)} steps, {sum(r['outcome'] for r in candidates)} right",
          flush=True)
    test_run = Path(args.test_run) if args.test_run else stage(
        "sample held-out", lambda: sample(out / "test_run", args.test_seed, args, args.test_problems))
    seen = {r.problem.question for r in train_results} | {r["prompt"] for r in labelled}
    held_out = [r for r in read_results(test_run) if r.error is None and r.problem.question not in seen]
    by_rules = rescore(held_out, ArithmeticRulesVerifier(), DELIMITER)
    for source in sources:
        prm = out / f"prm_{source}"
        rows = training_rows(source, labelled, candidates)
        if source in ("perturbed", "hard+perturbed"):
            report_row_labels(rows, source)
        if not (prm / LAYOUT_FILE).is_file():
            data = out / f"train_rows_{source}.jsonl"
            data.write_text("".join(json.dumps({**row, "labels": training_labels(row, source)}) + "\n" for row in rows),
                            encoding="utf-8")
            head = args.fit == "head"
            settings = TrainSettings(max_steps=args.max_steps, learning_rate=args.lr, batch_size=8, fit=args.fit,
                                     trainable_layers=None if head else args.trainable_layers, head_l2=args.head_l2,
                                     device="cpu")
            trained = stage(f"train-prm {source}", lambda: train_prm(data, "embedded:smollm2", prm, settings))
            print(f"train-prm ({source} labels): {trained.trainer}, loss {trained.losses[0]:.3f} -> "
                  f"{trained.losses[-1]:.3f}", flush=True)
        learned = TrainedPRM(VerifierConfig(name="trained_prm", model=str(prm), device="cpu", dtype="float32"))
        by_prm = stage(f"score held-out ({source})", lambda: rescore(held_out, learned, DELIMITER))
        print(f"\n== PRM trained on {source} labels: {SOURCES[source]}")
        report(args, held_out, by_prm, by_rules)
    print("stage times: " + ", ".join(f"{k} {v:.0f}s" for k, v in times.items()))


SOURCES = {
    "hard": "Monte Carlo, good when any try reaches gold (Math-Shepherd's hard estimate)",
    "soft": "Monte Carlo, the fraction of tries that reach gold (soft target)",
    "outcome": "every step of every sampled candidate labelled by its own final answer, no rollouts",
    "hard+last": "Monte Carlo hard labels, and the last step of every other sampled candidate labelled by its "
                 "own final answer (its other steps left out of the loss)",
    "perturbed": "every right candidate's steps good, and each of them with one number changed bad (the steps "
                 "before it context; learn.perturb), no rollouts",
    "hard+perturbed": "Monte Carlo hard labels, and the perturbed rows",
    "rules": "arithmetic_rules' step labels of every sampled candidate (an oracle, not a learned source: "
             "the ceiling of this model and data)",
}
MONTE_CARLO = ("hard", "soft", "hard+last", "hard+perturbed")  # the sources that need label-steps rows


def training_rows(source: str, labelled: list[dict[str, Any]], candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows a source labels. `hard+last` adds, to the few candidates label-steps rolled out from, the
    final step of every other candidate: its label is the candidate's own answer, one free try of the
    last prefix's value. A policy right on 5% of its samples leaves few right candidates among the
    labelled ones, and only right candidates have late steps labelled good; without more of them a PRM
    learns that late steps are bad whatever they say."""
    if source in ("hard", "soft"):
        return labelled
    if source in ("perturbed", "hard+perturbed"):
        made = perturbed_rows(Solution(r["id"], r["prompt"], tuple(r["completions"]), r["outcome"]) for r in candidates)
        return (labelled if source == "hard+perturbed" else []) + made
    if source != "hard+last":
        return candidates
    done = {(r["prompt"], tuple(r["completions"])) for r in labelled}
    return labelled + [r for r in candidates if (r["prompt"], tuple(r["completions"])) not in done]


def candidate_rows(results: list[ProblemResult]) -> list[dict[str, Any]]:
    """Every distinct candidate of a run (label-steps' `pick_candidates`, no limit) with its steps and whether
    its answer is right.

    Each candidate is one rollout of the policy from each of its own prefixes, so labelling every step
    with the candidate's outcome is an unbiased, one-sample estimate of the same value Monte Carlo
    rollouts estimate: cross-entropy against it is minimised by P(right | prefix) (OVM, Yu et al. 2024,
    "Outcome-supervised Verifiers for Planning in Mathematical Reasoning"). It spends the tokens on more
    prefixes with one try each, where label-steps spends k tries on few."""
    return [{"id": s.id, "prompt": s.prompt, "outcome": s.right, "completions": list(s.steps)}
            for s in solutions(results, DELIMITER)]


def training_labels(row: dict[str, Any], source: str) -> list[Any]:
    """One row's targets from `source`; steps the rules cannot judge get 0.5 under `rules`."""
    if source in ("perturbed", "hard+perturbed") and "mc_values" not in row:
        return list(row["labels"])
    if source in ("hard", "hard+perturbed") or (source == "hard+last" and "mc_values" in row):
        return [v > 0 for v in row["mc_values"]]
    if source == "hard+last":
        return [None] * (len(row["completions"]) - 1) + [row["outcome"]]
    if source == "soft":
        return list(row["mc_values"])
    if source == "outcome":
        return [row["outcome"]] * len(row["completions"])
    scores = ArithmeticRulesVerifier().score_solution(row["prompt"], row["completions"])
    return [0.5 if (label := rule_label(x)) is None else float(label) for x in scores]


def report_labels(rows: list[dict[str, Any]]) -> None:
    """The training labels against the rule labels of the same steps, before any training: a PRM
    cannot learn more signal than its labels hold. Each threshold on the Monte Carlo value is one
    labelling option (0: Math-Shepherd's hard labels); the value itself, as a score, gives the
    soft labels' AUC."""
    rules = ArithmeticRulesVerifier()
    values = [row["mc_values"] for row in rows]
    truth = [rules.score_solution(row["prompt"], row["completions"]) for row in rows]
    a = step_agreement(values, truth)
    low, high = a.auc_interval
    print(f"\ntraining labels vs rule labels: {a.n_steps} judged steps, {a.n_good} good by the rules; "
          f"Monte Carlo value as a score: AUC {a.auc:.3f} [{low:.3f}, {high:.3f}]")
    print_quality(values, truth, "label good when value >", (0.0, 0.25, 0.5))


def report_row_labels(rows: list[dict[str, Any]], source: str) -> None:
    """A source's own labels (rows that carry them, e.g. the perturbed ones) against the rule labels of
    the same steps; steps out of the loss (null labels) are left out."""
    rules = ArithmeticRulesVerifier()
    values, truth, labelled = [], [], 0
    for row in rows:
        labels = training_labels(row, source)
        scores = rules.score_solution(row["prompt"], row["completions"])
        values.append([float(x or 0) for x in labels])
        truth.append([s if x is not None else NO_ARITHMETIC for x, s in zip(labels, scores, strict=True)])
        labelled += sum(x is not None for x in labels)
    a = step_agreement(values, truth)
    print(f"\n{source} labels vs rule labels: {labelled} labelled steps in {len(rows)} rows, {a.n_steps} of them "
          f"judged by the rules, {a.n_good} good by them")
    print_quality(values, truth, "source", (0.5,), label=source)


def print_quality(values: list[list[float]], truth: list[list[float]], heading: str, thresholds: tuple[float, ...],
                  label: str | None = None) -> None:
    """Precision and recall of the labels' "good" against the rules', by step position."""
    print(f"{heading:<26} {'step':>5} {'steps':>6} {'rule good':>10} {'said good':>10} {'precision':>10} {'recall':>7}")
    for threshold in thresholds:
        for q in label_quality(values, truth, threshold):
            print(f"{label or threshold:<26} {q.position:>5} {q.n_steps:>6} {q.n_rule_good:>10} {q.n_label_good:>10} "
                  f"{q.precision:>10.2f} {q.recall:>7.2f}")


def report(args: argparse.Namespace, held_out: list[ProblemResult], by_prm: list[ProblemResult],
           by_rules: list[ProblemResult]) -> None:
    prm, rules = step_scores(by_prm), step_scores(by_rules)
    a = step_agreement(prm, rules)
    print(f"\nheld-out: {len(held_out)} problems ({args.wording} wording, levels {args.levels}), N={args.n}; "
          f"{a.n_steps} steps labelled by arithmetic_rules, {a.n_good} good")
    print(f"{'name':<44} {'ours':>8} {'baseline':>9}")
    print(f"{'trained PRM step accuracy vs rule labels':<44} {100 * a.accuracy:>7.1f}% {100 * a.baseline:>8.1f}%"
          "  (baseline: always the commoner label)")
    low, high = a.auc_interval
    print(f"{'trained PRM step AUC vs rule labels':<44} {a.auc:>8.3f} {0.5:>9.3f}  (baseline: no signal; "
          f"95% CI over solutions [{low:.3f}, {high:.3f}])")
    w = within_problem_auc(prm, rule_labels(rules),
                           [r.problem.question for r in by_prm for _ in r.completions])
    print(f"{'trained PRM step AUC within problems':<44} {w.auc:>8.3f} {0.5:>9.3f}  (what search compares: a good "
          f"and a bad step of one problem; {w.pairs} pairs in {w.problems} problems, 95% CI over problems "
          f"[{w.interval[0]:.3f}, {w.interval[1]:.3f}])")
    majority = accuracy(by_rules, "majority")
    n = args.n
    for label, results in (("weighted best-of-N, trained PRM", by_prm), ("weighted best-of-N, arithmetic_rules", by_rules)):
        print(f"{label + f' @{n}':<44} {accuracy(results, 'weighted'):>7.1f}% {majority:>8.1f}%  (baseline: majority @{n})")
    oracle = 100.0 * sum(any(correct_flags(r)) for r in held_out) / max(len(held_out), 1)
    print(f"{'pass@' + str(n) + ' (oracle ceiling)':<44} {oracle:>7.1f}%")


if __name__ == "__main__":
    main()
