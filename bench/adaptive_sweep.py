"""Adaptive-Consistency's stopping rules swept over recorded samples: the rule, confidence and wave that
spend the fewest tokens at majority@N's accuracy, chosen on one set of problems and checked on another.

Adaptive-Consistency (Aggarwal et al. 2023) and ESC (Li et al. 2024) draw i.i.d. samples in waves and
stop once the vote is settled, so the first k of a best-of-N run's N samples are a draw of what the
strategy sees after k. Each setting is replayed over every problem's samples in index order with
search/adaptive.py's own rules and verdict: after each wave of `wave` samples (the last one partial)
the rule reads the answers so far; the problem spends the tokens of the samples drawn and answers
their majority. Replaying costs no generation, so the grid is wide; the cost is that it shows what
the rule would do on these samples, not a second run's.

Settings are chosen on the --tune wording's problems (fewest tokens among those within --tolerance
points of majority@N there) and reported on the --test wording's: a different problem set and a
different wording. Problems are then split by how scattered majority@N's answers were (the leader's
share of the answered samples), because a rule can only stop where the answers agree.

The samples: a best-of-N run per wording, from bench/reward_free.py's folder (--samples) or run here.

    python bench/adaptive_sweep.py [--samples runs/reward_free] [--tune exemplar] [--test alt]
        [--n 16] [--tolerance 1] [--limit 100] [--out runs/adaptive_sweep]
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from pathlib import Path

from _common import claim_out, cpu_world_parser, cpu_world_run, header, row

from ttscale.data.results import read_results
from ttscale.eval.metrics import bootstrap_interval
from ttscale.grading import correctness, vote
from ttscale.search.adaptive import beta_leader_probability, dirichlet_leader_probability, window_agrees
from ttscale.search_sections import AdaptiveConfig
from ttscale.types import ProblemResult

RULES = ("window", "beta", "dirichlet")
WAVES = (1, 2, 4, 8)
CONFIDENCES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
SCATTER = 0.5  # leader's share of majority@N's answered samples below which a problem counts as scattered


@dataclass(frozen=True)
class Setting:
    rule: str
    wave: int
    confidence: float

    def __str__(self) -> str:
        conf = "" if self.rule == "window" else f" p>={self.confidence:g}"
        return f"{self.rule} wave {self.wave}{conf}"


@dataclass
class Problem:
    """One problem's recorded samples: answers, tokens and rightness in sample order."""

    answers: list[str | None]
    tokens: list[int]
    right: list[bool]

    @functools.cached_property
    def counts(self) -> list[tuple[int, ...]]:
        """Answer-group sizes after each prefix (index k: the first k + 1 samples), as the rules read them."""
        return [tuple(g.count for g in vote(self.answers[:k]).groups if g.answer is not None)
                for k in range(1, len(self.answers) + 1)]

    @functools.cached_property
    def picks(self) -> list[bool]:
        """Whether the vote over the first k + 1 samples is right (the strategy's verdict)."""
        out = []
        for k in range(1, len(self.answers) + 1):
            members = vote(self.answers[:k]).members
            out.append(bool(members) and self.right[members[0]])
        return out

    def leader_share(self) -> float:
        answered = sum(a is not None for a in self.answers)
        return self.counts[-1][0] / answered if answered and self.counts[-1] else 0.0


@functools.cache
def _dirichlet(counts: tuple[int, ...]) -> float:
    return dirichlet_leader_probability(counts)  # a fixed-seed Monte Carlo: a function of the counts alone


def stops(p: Problem, k: int, s: Setting) -> bool:
    """search.adaptive.should_stop on the first k samples, with the Dirichlet estimate cached by counts."""
    if s.rule == "window":
        return window_agrees(p.answers[:k], s.wave)
    counts = p.counts[k - 1]
    prob = beta_leader_probability(counts) if s.rule == "beta" else (_dirichlet(counts) if counts else 0.0)
    return prob >= s.confidence


def replay(p: Problem, s: Setting) -> tuple[float, float]:
    """(right, tokens) of AdaptivePolicy on these samples: waves until the rule fires or all are drawn."""
    n, k = len(p.answers), 0
    while k < n:
        k = min(k + s.wave, n)
        if k >= n or stops(p, k, s):
            break
    return float(p.picks[k - 1]), float(sum(p.tokens[:k]))


def recorded(results: list[ProblemResult]) -> list[Problem]:
    correct = correctness(results)
    return [Problem([c.answer for c in r.completions], [c.n_tokens for c in r.completions], correct[r.id])
            for r in sorted(results, key=lambda r: r.id) if r.error is None and r.completions]


def summary(problems: list[Problem], s: Setting | None) -> tuple[list[float], list[float]]:
    """Per-problem rightness and tokens; None: majority over all N (the baseline)."""
    if s is None:
        return [float(p.picks[-1]) for p in problems], [float(sum(p.tokens)) for p in problems]
    hits, tokens = zip(*(replay(p, s) for p in problems)) if problems else ((), ())
    return list(hits), list(tokens)


def grid() -> list[Setting]:
    out = [Setting("window", w, 1.0) for w in WAVES if w > 1]  # a window of one always agrees
    out += [Setting(r, w, c) for r, w, c in itertools.product(("beta", "dirichlet"), WAVES, CONFIDENCES)]
    return out


def choose(problems: list[Problem], tolerance: float) -> tuple[Setting, list[tuple[Setting, float, float]]]:
    """The setting with the fewest tokens whose accuracy is within `tolerance` points of majority@N."""
    base_hits, base_tokens = summary(problems, None)
    base_acc, total = sum(base_hits) / len(problems), sum(base_tokens)
    table = []
    for s in grid():
        hits, tokens = summary(problems, s)
        table.append((s, 100 * (sum(hits) / len(problems) - base_acc), sum(tokens) / total))
    within = [t for t in table if t[1] >= -tolerance]
    return min(within, key=lambda t: (t[2], -t[1]))[0], table


def report(name: str, problems: list[Problem], settings: dict[str, Setting | None]) -> None:
    base_hits, base_tokens = summary(problems, None)
    print(f"\n{name}: {len(problems)} problems")
    print(f"{'setting':<44}{'accuracy':>9} {'95% CI':>15} {'vs majority (paired)':>27} {'tokens':>8} {'ratio':>6}")
    for label, s in settings.items():
        hits, tokens = summary(problems, s)
        lo, hi = bootstrap_interval(hits)
        diff = [a - b for a, b in zip(hits, base_hits)]
        dlo, dhi = bootstrap_interval(diff)
        print(f"{label:<44}{100 * sum(hits) / len(hits):>8.1f}% [{100 * lo:5.1f}, {100 * hi:5.1f}] "
              f"{100 * sum(diff) / len(diff):>+10.1f} [{100 * dlo:+5.1f}, {100 * dhi:+5.1f}] "
              f"{sum(tokens) / len(tokens):>8.1f} {sum(tokens) / sum(base_tokens):>6.2f}")


def main() -> None:
    ap = cpu_world_parser("runs/adaptive_sweep")
    ap.add_argument("--samples", default=None, help="bench/reward_free.py's --out: read its best-of-N runs "
                    "(<wording>/best_of_n_n<N>) instead of sampling here")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--tune", default="exemplar", help="the wording whose problems choose the setting")
    ap.add_argument("--test", default="alt", help="the wording whose problems report it")
    ap.add_argument("--tolerance", type=float, default=1.0, help="accuracy points below majority@N allowed in tuning")
    args = ap.parse_args()

    def samples(wording: str) -> list[Problem]:
        if args.samples:
            return recorded(read_results(Path(args.samples) / wording / f"best_of_n_n{args.n}"))
        return recorded(cpu_world_run(args, wording, Path(args.out) / wording / f"best_of_n_n{args.n}",
                                      "search.strategy=best_of_n", f"search.n={args.n}", "verifier.name=none",
                                      "search.selection=majority"))

    if not args.samples:
        claim_out(Path(args.out), args.fresh)
    tune, test = samples(args.tune), samples(args.test)
    chosen, table = choose(tune, args.tolerance)
    default = AdaptiveConfig()
    current = Setting(default.stop_rule, default.wave, default.stop_confidence)

    print(f"SmolLM2-135M float32, synthetic arithmetic levels {args.levels}, best-of-N N={args.n} samples replayed; "
          f"tuned on {args.tune} wording, tested on {args.test} wording")
    print(f"\ntuning ({args.tune}): the 12 cheapest settings within {args.tolerance:g} points of majority@{args.n}, "
          f"then the default")
    ranked = sorted((t for t in table if t[1] >= -args.tolerance), key=lambda t: (t[2], -t[1]))[:12]
    ranked += [t for t in table if t[0] == current]
    for s, diff, ratio in ranked:
        print(f"  {s!s:<30} {diff:>+6.1f} pts {ratio:>6.2f}x tokens")

    settings = {f"majority@{args.n}": None, f"default ({current})": current, f"chosen ({chosen})": chosen}
    report(f"test ({args.test} wording)", test, settings)
    settled = [p for p in test if p.leader_share() >= SCATTER]
    scattered = [p for p in test if p.leader_share() < SCATTER]
    for label, group in ((f"settled (leader >= {SCATTER:.0%} of answers)", settled),
                         (f"scattered (leader < {SCATTER:.0%})", scattered)):
        if group:
            report(f"test, {label}", group, settings)

    print(f"\nthe same as rows (ours = the chosen setting, baseline = majority@{args.n}; test problems)")
    header()
    hits, tokens = summary(test, chosen)
    base_hits, base_tokens = summary(test, None)
    row("accuracy (%)", 100 * sum(hits) / len(hits), 100 * sum(base_hits) / len(base_hits))
    row("tokens per problem", sum(tokens) / len(tokens), sum(base_tokens) / len(base_tokens))
    for label, group in (("settled", settled), ("scattered", scattered)):
        if group:
            t, b = summary(group, chosen)[1], summary(group, None)[1]
            row(f"tokens per problem, {label} ({len(group)})", sum(t) / len(t), sum(b) / len(b))


if __name__ == "__main__":
    main()
