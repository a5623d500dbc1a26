"""DeepConf (Fu et al. 2025, "Deep Think with Confidence"): vote by trace confidence, stop weak traces early.

offline: sample N whole traces, keep the top eta% by confidence (`search.deepconf.measure`),
and vote among them weighted by that confidence.
online: `search.deepconf.warmup` whole traces set the threshold s = the (100 - eta)th percentile of
their lowest group confidence (eta = 90 keeps ~90% of traces, eta = 10 ~10%: DeepConf-high
and -low); further traces are generated in chunks of `search.deepconf.chunk_tokens` through the
expansion core, and one stops as soon as a full window's group confidence falls below s,
so the rest of it is never generated. After each wave the confidence-weighted share of the
leading answer among the kept traces is compared with `search.adaptive.stop_confidence` (the paper's
consensus threshold tau); sampling stops there or at N traces.
Every filtered or stopped trace stays in the results, marked, its tokens in the budget.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from ttscale.backends.base import Generator
from ttscale.confidence import DEFAULT_TOP_K, group_confidence, summarize, token_confidence, trace_confidence
from ttscale.grading import vote
from ttscale.search.base import BaseStrategy, SearchSettings
from ttscale.search.records import Beam, Expansion
from ttscale.search.waves import Verdict, run_waves
from ttscale.types import Problem, ProblemResult
from ttscale.verifiers.base import Verifier


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile, linearly interpolated between order statistics (numpy's default)."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def keep_top(confidences: Sequence[float], eta: float) -> list[int]:
    """Indices of the ceil(eta% of N) most confident traces (at least one), most confident first; ties: earlier."""
    k = max(1, math.ceil(eta / 100 * len(confidences)))
    return sorted(range(len(confidences)), key=lambda i: (-confidences[i], i))[:k]


def weighted_pick(answers: Sequence[str | None], confidences: Sequence[float], kept: Sequence[int]) -> tuple[int | None, float]:
    """(the most confident trace of the confidence-weighted winner among `kept`, the winner's weight share)."""
    if not kept:
        return None, 0.0
    result = vote([answers[i] for i in kept], weights=[confidences[i] for i in kept])
    if not result.members:
        return kept[0], 0.0
    best = max((kept[m] for m in result.members), key=lambda i: (confidences[i], -i))
    total = sum(confidences[i] for i in kept)
    share = result.groups[0].weight / total if total > 0 and result.winner is not None else 0.0
    return best, share


def crossed(beam: Beam, threshold: float, window: int, judged: int = 0) -> bool:
    """Has any full window of the trace fallen below the threshold? A finished trace shorter than a window
    is judged by its mean, as its warm-up peers were.

    `judged`: the trace's length when it was last found above; only windows ending after it are read,
    so a trace continued chunk by chunk costs its length once, not once per chunk.
    """
    logprobs = beam.top_logprobs
    if len(logprobs) < window:
        conf = token_confidence(logprobs)
        return beam.finished and bool(conf) and sum(conf) / len(conf) < threshold
    conf = token_confidence(logprobs[max(0, judged - window + 1):])
    return len(conf) >= window and min(group_confidence(conf, window)) < threshold


class _Traces:
    """A problem's traces in generation order, with their answers and confidences.

    Both are read for every trace after every wave; a trace's are computed once per version
    of it (a continued trace is a new Beam), else N = 256 re-reads every token each wave.
    """

    def __init__(self, settings: SearchSettings) -> None:
        self.s = settings
        self.beams: list[Beam] = []
        self._read: dict[int, tuple[Beam, float, str | None]] = {}

    def _trace(self, i: int) -> tuple[Beam, float, str | None]:
        beam = self.beams[i]
        hit = self._read.get(i)
        if hit is None or hit[0] is not beam:
            summary = summarize(beam.top_logprobs, self.s.confidence_window)
            hit = self._read[i] = (beam, trace_confidence(summary, self.s.deepconf.measure), beam.answer)
        return hit

    def confidence(self, i: int) -> float:
        return self._trace(i)[1]

    def answers(self) -> list[str | None]:
        return [self._trace(i)[2] for i in range(len(self.beams))]


class OfflinePolicy(_Traces):
    def initial(self) -> list[Expansion]:
        return [Expansion(None, self.s.n, whole=True)]

    def step(self, children: list[Beam]) -> list[Expansion]:
        self.beams += children
        return []

    def verdict(self) -> Verdict:
        conf = [self.confidence(i) for i in range(len(self.beams))]
        kept = keep_top(conf, self.s.deepconf.eta) if conf else []
        selected, _ = weighted_pick(self.answers(), conf, kept)
        dropped = {i: "filtered" for i in range(len(self.beams)) if i not in set(kept)}
        return Verdict(tuple(self.beams), selected, dropped)


class OnlinePolicy(_Traces):
    def __init__(self, settings: SearchSettings) -> None:
        super().__init__(settings)
        self.threshold: float | None = None
        self.active: list[int] = []
        self.stopped: set[int] = set()
        self.judged: dict[int, int] = {}  # trace -> its length when crossed() last found it above
        self.requested = 0

    def initial(self) -> list[Expansion]:
        self.requested = min(self.s.deepconf.warmup, self.s.n)
        return [Expansion(None, self.requested, whole=True)]

    def step(self, children: list[Beam]) -> list[Expansion]:
        if self.threshold is None:
            self.beams += children
            lowest = [summarize(b.top_logprobs, self.s.confidence_window).lowest_group for b in children]
            self.threshold = percentile(lowest, 100 - self.s.deepconf.eta) if lowest else 0.0
        else:
            # children: one continuation per active trace (request order), then the new wave's roots
            for i, child in zip(self.active, children):
                self.beams[i] = child
            new = children[len(self.active):]
            self.active += range(len(self.beams), len(self.beams) + len(new))
            self.beams += new
        for i in self.active:
            if crossed(self.beams[i], self.threshold, self.s.confidence_window, self.judged.get(i, 0)):
                self.stopped.add(i)
            self.judged[i] = len(self.beams[i].top_logprobs)
        self.active = [i for i in self.active if i not in self.stopped and not self.beams[i].finished]
        chunk = self.s.deepconf.chunk_tokens
        more = [Expansion(self.beams[i], 1, whole=True, max_tokens=chunk) for i in self.active]
        if not self.active and self.requested < self.s.n and not self._consensus():
            k = min(self.s.adaptive.wave, self.s.n - self.requested)
            self.requested += k
            more.append(Expansion(None, k, whole=True, max_tokens=chunk))
        return more

    def _kept(self) -> list[int]:
        return [i for i in range(len(self.beams)) if i not in self.stopped]

    def _consensus(self) -> bool:
        conf = [self.confidence(i) for i in range(len(self.beams))]
        _, share = weighted_pick(self.answers(), conf, self._kept())
        return share >= self.s.adaptive.stop_confidence

    def verdict(self) -> Verdict:
        conf = [self.confidence(i) for i in range(len(self.beams))]
        selected, _ = weighted_pick(self.answers(), conf, self._kept())
        if selected is None and self.beams:  # every trace stopped: the most confident one still answers
            selected = max(range(len(self.beams)), key=lambda i: (conf[i], -i))
        return Verdict(tuple(self.beams), selected, {i: "stopped" for i in sorted(self.stopped)})


class DeepConf(BaseStrategy):
    name = "deepconf"
    needs_verifier = False
    fixed_n = False  # online stops early; offline returns all N (the filtered ones marked)
    reads_logprobs = True  # trace confidence is read from the tokens' top-k log-probabilities

    def max_expansions(self, settings: SearchSettings) -> int:
        """Offline: N whole traces. Online: a trace is continued one chunk at a time, up to max_new_tokens.
        Waves roll no lookahead (search/waves.py)."""
        if settings.deepconf.mode == "offline":
            return settings.n
        return settings.n * math.ceil(settings.max_new_tokens / settings.deepconf.chunk_tokens)

    def search(self, problems: Sequence[Problem], prompts: Sequence[str], generator: Generator,
               verifier: Verifier | None, settings: SearchSettings) -> list[ProblemResult]:
        s = replace(settings, filter_duplicates=False, logprobs=settings.logprobs or DEFAULT_TOP_K)
        make = OnlinePolicy if s.deepconf.mode == "online" else OfflinePolicy
        return run_waves(self.name, problems, prompts, generator, verifier, s, [make(s) for _ in problems])
