"""Why one pick beats another over the same candidates: each pick, then what weighted voting is made of.

For each run folder (a search's or best-of-N's, e.g. those bench/paper_effect.py writes under --out):
1. the strategy's own pick and majority / naive / weighted over its kept candidates
   (grading.select.reselect, as `ttscale evaluate` puts them), each with a 95% bootstrap interval;
2. weighted voting taken apart, one change at a time: every copy of a repeated text voting
   (`distinct` off), the step reductions `min`, `mean` and `prod` instead of `last`, and the scores
   replaced by calibrated ones: the chance a candidate is right given its score, estimated on the
   other half of the problems (two folds, so no problem calibrates its own pick). Weighted voting
   sums scores per answer, which is the expected number of right votes only when a score is that
   chance (Snell et al. 2024, section 5; Beeching, Tunstall & Rush 2024 sum raw PRM scores);
3. the problems where naive and weighted disagree: how big the answer group weighted chose is against
   the group of naive's pick, and the score levels in each (the reason weighted lost there);
4. naive against weighted paired over the same problems, and the calibrated vote against both;
5. how well the candidates' scores order them before any vote: the AUC of a right against a wrong
   candidate of the same problem, by reduction and for the first step's score alone (a verifier that
   tells steps apart can still give every last step the same score).

    python bench/pick_analysis.py RUN_DIR [RUN_DIR ...] [--scores FILE]

--scores FILE takes the step scores from FILE instead of the run (the cache bench/paper_effect.py --prm
writes, `{"scores": {problem id: [[step scores] per candidate]}}`): the same candidates under another
verifier.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import replace
from statistics import median

from _common import header, row, with_step_scores

from ttscale.data.results import read_results
from ttscale.eval.metrics import bootstrap_interval
from ttscale.grading import canonical_key, correctness
from ttscale.grading.select import reduce_scores, reselect, solution_score
from ttscale.learn.agreement import within_problem_auc
from ttscale.types import Completion, ProblemResult


def hits(results: list[ProblemResult], correct: dict[str, list[bool]], pick) -> list[float]:
    return [float(r.error is None and (i := pick(r)) is not None and correct[r.id][i]) for r in results]


def calibrated(results: list[ProblemResult], correct: dict[str, list[bool]]) -> list[ProblemResult]:
    """Each candidate's `last` score replaced by P(right | that score) from the other fold's candidates
    (scores rounded to 2 places, so the rule verifier's levels are the bins; an unseen level keeps the
    other fold's overall rate)."""
    folds = [results[0::2], results[1::2]]
    out = []
    for k, fold in enumerate(folds):
        other = folds[1 - k]
        seen: Counter[float] = Counter()
        right: Counter[float] = Counter()
        for r in other:
            for c, ok in zip(r.completions, correct[r.id]):
                level = round(solution_score(c, "last"), 2)
                seen[level] += 1
                right[level] += ok
        overall = sum(right.values()) / max(sum(seen.values()), 1)

        def chance(c: Completion) -> float:
            level = round(solution_score(c, "last"), 2)
            return right[level] / seen[level] if seen[level] else overall

        out += [replace(r, completions=tuple(replace(c, step_scores=(chance(c),)) for c in r.completions))
                for r in fold]
    order = {r.id: i for i, r in enumerate(results)}
    return sorted(out, key=lambda r: order[r.id])


def anatomy(results: list[ProblemResult], correct: dict[str, list[bool]]) -> None:
    lost = []
    for r in results:
        if r.error is None and r.completions and all(c.step_scores for c in r.completions):
            naive, weighted = reselect(r, "naive", "last"), reselect(r, "weighted", "last")
            if naive is not None and weighted is not None and correct[r.id][naive] and not correct[r.id][weighted]:
                lost.append((r, naive, weighted))
    if not lost:
        print("no problem where naive is right and weighted wrong")
        return

    def group(r: ProblemResult, i: int) -> list[float]:
        """The last-step scores of the kept candidates whose answer reads as candidate i's."""
        key = canonical_key(r.completions[i].answer or "")
        return [solution_score(c, "last") for j, c in enumerate(r.completions)
                if c.dropped is None and correct[r.id][j] == correct[r.id][i] and canonical_key(c.answer or "") == key]

    won = [group(r, w) for r, _, w in lost]
    right = [group(r, n) for r, n, _ in lost]
    print(f"{len(lost)} problems where naive is right and weighted wrong: the wrong answer weighted chose had "
          f"{median(len(g) for g in won):.0f} candidates (median) scoring {median(s for g in won for s in g):.2f} "
          f"(median), the right one naive chose {median(len(g) for g in right):.0f} scoring "
          f"{median(s for g in right for s in g):.2f}; score levels of the wrong groups: "
          + ", ".join(f"{k:.2f} x{v}" for k, v in sorted(Counter(round(s, 2) for g in won for s in g).items())))


def paired(label: str, ours: list[float], base: list[float]) -> None:
    diff = [a - b for a, b in zip(ours, base)]
    lo, hi = bootstrap_interval(diff)
    print(f"{label:<48} {100 * sum(diff) / len(diff):+6.1f} pts [{100 * lo:+5.1f}, {100 * hi:+5.1f}]")


def candidate_order(results: list[ProblemResult], correct: dict[str, list[bool]]) -> None:
    problems = [r.id for r in results]
    labels = [list(correct[r.id]) for r in results]
    print("right against wrong candidates of one problem, AUC of their scores [95% CI over problems]:")
    for name, reduce in [*((x, lambda ss, x=x: reduce_scores(ss, x)) for x in ("last", "min", "mean", "prod")),
                         ("first step", lambda ss: ss[0] if ss else 0.0)]:
        w = within_problem_auc([[reduce(c.step_scores or ()) for c in r.completions] for r in results], labels,
                               problems)
        print(f"  {name:<34} {w.auc:6.3f}  [{w.interval[0]:.3f}, {w.interval[1]:.3f}] over {w.pairs} pairs in "
              f"{w.problems} problems")
    by_step: dict[tuple[str, bool], list[float]] = {}
    for r in results:
        for c, ok in zip(r.completions, correct[r.id]):
            for j, score in enumerate(c.step_scores or ()):
                by_step.setdefault((str(j + 1) if j < 2 else "3+", ok), []).append(score)
    print("  median step score, right / wrong candidates: " + ", ".join(
        f"step {k} {median(by_step.get((k, True), [float('nan')])):.4f} / {median(by_step.get((k, False), [float('nan')])):.4f}"
        for k in ("1", "2", "3+")))


def with_scores(results: list[ProblemResult], path: str) -> list[ProblemResult]:
    scores = json.loads(open(path, encoding="utf-8").read())["scores"]
    missing = [r.id for r in results if r.id not in scores or len(scores[r.id]) != len(r.completions)]
    if missing:
        raise SystemExit(f"--scores {path} has no scores (or another number of candidates) for {missing[0]}")
    return with_step_scores(results, scores)


def analyse(run_dir: str, scores: str | None = None) -> None:
    results = sorted(read_results(run_dir), key=lambda r: r.id)
    if scores:
        results = with_scores(results, scores)
    correct = correctness(results)
    if not results or not all(c.step_scores for r in results for c in r.completions):
        print(f"\n{run_dir}: no verifier scores, nothing to take apart")
        return
    strategy = results[0].strategy
    rows = {
        "own pick": hits(results, correct, lambda r: r.selected),
        "majority": hits(results, correct, lambda r: reselect(r, "majority", "last")),
        "naive (last)": hits(results, correct, lambda r: reselect(r, "naive", "last")),
        "weighted (last)": hits(results, correct, lambda r: reselect(r, "weighted", "last")),
        "weighted, every copy votes": hits(results, correct,
                                           lambda r: reselect(replace(r, distinct=False), "weighted", "last")),
    }
    for reduction in ("min", "mean", "prod"):
        rows[f"naive ({reduction})"] = hits(results, correct, lambda r, x=reduction: reselect(r, "naive", x))
        rows[f"weighted ({reduction})"] = hits(results, correct, lambda r, x=reduction: reselect(r, "weighted", x))
    rows["weighted, calibrated scores"] = hits(
        calibrated(results, correct), correct, lambda r: reselect(r, "weighted", "last"))
    pass_n = [float(any(correct[r.id])) for r in results]
    print(f"\n{run_dir}{f' (scores: {scores})' if scores else ''}: {strategy}, {len(results)} problems; accuracy [95% bootstrap CI over problems]")
    for name, values in [*rows.items(), ("pass@N (oracle)", pass_n)]:
        lo, hi = bootstrap_interval(values)
        print(f"  {name:<34} {100 * sum(values) / len(values):6.1f}% [{100 * lo:5.1f}, {100 * hi:5.1f}]")
    anatomy(results, correct)
    candidate_order(results, correct)
    print("paired over the same problems:")
    paired("  naive (last) - weighted (last)", rows["naive (last)"], rows["weighted (last)"])
    paired("  weighted calibrated - weighted (last)", rows["weighted, calibrated scores"], rows["weighted (last)"])
    paired("  weighted calibrated - naive (last)", rows["weighted, calibrated scores"], rows["naive (last)"])
    header()
    weighted = 100 * sum(rows["weighted (last)"]) / len(results)
    row("naive pick (baseline: weighted)", 100 * sum(rows["naive (last)"]) / len(results), weighted, "% right")
    row("calibrated weighted (baseline: weighted)", 100 * sum(rows["weighted, calibrated scores"]) / len(results),
        weighted, "% right")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", help="run folders")
    ap.add_argument("--scores", help="step scores to use instead of the runs' (one run folder only)")
    args = ap.parse_args()
    if args.scores and len(args.runs) > 1:
        raise SystemExit("--scores belongs to one run's candidates: give one run folder with it")
    for run_dir in args.runs:
        analyse(run_dir, args.scores)


if __name__ == "__main__":
    main()
