"""`ttscale learn label-steps`: Math-Shepherd Monte Carlo step labels (Wang et al. 2024, sec. 3.3).

From each step prefix of a run's candidates, the policy that wrote them rolls out k
whole solutions; the step is good when any (hard estimation) / the fraction of rollouts
(soft estimation) that reach the gold answer. A finished candidate's last step is
labelled by its own answer: it has nothing left to roll out.

The candidates themselves are samples of the same policy from each of their prefixes, so
with `own_continuation` (the default) every candidate that continues a prefix counts as
one more rollout of it: with a weak policy and few rollouts, a right solution's early
steps would otherwise often be labelled bad because k fresh rollouts all failed, which
is the noise a small PRM then learns.

The rollouts sample as the run did, unless `temperature` is given: with a policy right 5% of the
time, a right prefix is often labelled bad because every fresh rollout slips later, and a cooler
completer spoils fewer of them (Math-Shepherd's own analysis found annotation quality rising with
the completer's strength); `bench/learned_prm.py --label-temperature` measures the labels each gives
against the rule labels.

Rows use TRL's stepwise-supervision format (prompt, completions = the steps without
their delimiter, labels), plus `id`, `mc_values`, the fraction per step, and the tallies behind
each fraction (`rollout_hits` of `rollouts`, `own_hits` of `own_tries`). The output
directory resumes like a run: rows are appended problem by problem, done ids skipped.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from ttscale.backends.base import Generator, build_generator
from ttscale.config import RunConfig, ThinkingConfig
from ttscale.data.outputs import claim_output, writing
from ttscale.data.prompts import PromptFormat, run_prompt_format
from ttscale.errors import ConfigError, RunDirError
from ttscale.grading import correct_flags, extract_answer, is_equiv_many, solution_key
from ttscale.learn.common import append_rows, read_rows, read_run, save_dataset
from ttscale.registry import release
from ttscale.search.seeds import problem_seed, request_seed
from ttscale.search.steps import clean_step, strip_end_marker
from ttscale.search.thinking import answer_part_of
from ttscale.types import Completion, ProblemResult, SamplingParams

log = logging.getLogger("ttscale")

STEPS_JSONL = "steps.jsonl"
SETTINGS = "label_settings.json"
DATASET = "dataset"
Mode = Literal["hard", "soft"]
TALLIES = ("rollout_hits", "rollouts", "own_hits", "own_tries")


@dataclass(frozen=True)
class LabelSettings:
    """What decides the labels; a resumed output directory must have been written with the same."""

    run_dir: str
    rollouts: int = 8
    mode: Mode = "hard"
    max_per_problem: int | None = None
    seed: int = 0
    max_new_tokens: int | None = None
    own_continuation: bool = True
    # None: the run's own temperature (Math-Shepherd's estimate of what *this* policy reaches). Lower
    # makes a stronger completer for a weak policy: fewer right prefixes spoiled by one bad rollout step
    temperature: float | None = None

    def __post_init__(self) -> None:
        if self.rollouts < 1:
            raise ConfigError(f"--rollouts={self.rollouts} is invalid; accepted: an integer >= 1")
        if self.mode not in ("hard", "soft"):
            raise ConfigError(f"--mode={self.mode!r} is invalid; accepted: hard, soft")
        if self.max_per_problem is not None and self.max_per_problem < 1:
            raise ConfigError(f"--max-per-problem={self.max_per_problem} is invalid; accepted: an integer >= 1")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ConfigError(f"--max-new-tokens={self.max_new_tokens} is invalid; accepted: an integer >= 1")
        if self.temperature is not None and not 0 <= self.temperature < float("inf"):
            raise ConfigError(f"--temperature={self.temperature} is invalid; accepted: a number >= 0")
        if self.temperature == 0 and self.rollouts > 1:
            raise ConfigError(f"--temperature=0 rolls out one greedy completion; --rollouts={self.rollouts} would "
                              "repeat it: use --rollouts 1, or a temperature above 0")


@dataclass(frozen=True)
class LabelOutcome:
    output: Path
    n_rows: int
    n_new: int
    n_skipped: int
    n_failed: int


def pick_candidates(result: ProblemResult, limit: int | None) -> list[tuple[Completion, bool]]:
    """Distinct candidates with their gold verdict, correct and wrong interleaved so both kinds are labelled."""
    seen: set[str] = set()
    right: list[tuple[Completion, bool]] = []
    wrong: list[tuple[Completion, bool]] = []
    for c, ok in zip(result.completions, correct_flags(result)):
        key = solution_key(c.text)
        if c.steps and key and key not in seen:
            seen.add(key)
            (right if ok else wrong).append((c, ok))
    mixed = [x for pair in zip(right, wrong) for x in pair]
    rest = right[len(wrong):] + wrong[len(right):]
    return (mixed + rest)[:limit]


def _rollout_prefixes(candidates: Sequence[tuple[Completion, bool]]) -> list[str]:
    """Distinct step prefixes to roll out (a finished candidate's full text is graded directly)."""
    prefixes: dict[str, None] = {}
    for c, _ in candidates:
        last = len(c.steps) - 1 if c.finished else len(c.steps)
        for i in range(1, last + 1):
            prefixes.setdefault("".join(c.steps[:i]), None)
    return list(prefixes)


def monte_carlo_hits(
    result: ProblemResult, prefixes: list[str], prompt: str, generator: Generator, params: SamplingParams,
    end_markers: tuple[str, ...], thinking: ThinkingConfig | None = None,
) -> dict[str, int]:
    """prefix -> how many of its `params.n` rollouts reach the gold answer (one generate call).

    With a thinking run's markers, only the answer after the thinking block counts, as in the run's
    own grading: "so it is 5" while still thinking is not an answer. Rollouts are not budget-forced.
    """
    if not prefixes:
        return {}
    # each prefix its own seed, derived from the prefix, so its rollouts do not depend on the other prefixes
    per_prefix = [replace(params, seed=request_seed(params.seed or 0, result.problem.id, "rollout", p))
                  for p in prefixes]
    outputs = generator.generate([prompt + p for p in prefixes], per_prefix)
    t = thinking or ThinkingConfig(start="", end="")
    graded_parts = [answer_part_of(t, prompt, p + strip_end_marker(g.text, end_markers)[0])
                    for p, gens in zip(prefixes, outputs) for g in gens]
    answers = [None if part is None else extract_answer(part) for part in graded_parts]
    graded = [i for i, a in enumerate(answers) if a is not None]
    ok = [False] * len(answers)
    for i, verdict in zip(graded, is_equiv_many([(result.problem.answer, a) for a in answers if a is not None])):
        ok[i] = verdict
    k = params.n
    return {p: sum(ok[j * k : (j + 1) * k]) for j, p in enumerate(prefixes)}


def own_continuations(candidates: Sequence[tuple[Completion, bool]]) -> dict[str, list[bool]]:
    """prefix -> the verdicts of the candidates that continue past it (each one a policy sample from there)."""
    found: dict[str, list[bool]] = {}
    for c, ok in candidates:
        for i in range(1, len(c.steps)):
            found.setdefault("".join(c.steps[:i]), []).append(ok)
    return found


def label_rows(
    result: ProblemResult, fmt: PromptFormat, generator: Generator, params: SamplingParams, settings: LabelSettings,
    delimiter: str,
) -> list[dict[str, Any]]:
    candidates = pick_candidates(result, settings.max_per_problem)
    hits = monte_carlo_hits(
        result, _rollout_prefixes(candidates), fmt.render(result.problem), generator, params, fmt.end_markers,
        fmt.thinking,
    )
    own = own_continuations(candidates) if settings.own_continuation else {}

    def counts(c: Completion, ok: bool, i: int) -> tuple[int, int, int, int]:
        """(rollout hits, rollouts, own hits, own tries) behind step i's value."""
        if i + 1 == len(c.steps) and c.finished:
            return 0, 0, int(ok), 1  # nothing left to roll out: its own answer is the one try
        prefix = "".join(c.steps[: i + 1])
        mine = own.get(prefix, [])
        return hits[prefix], params.n, sum(mine), len(mine)

    rows = []
    for c, ok in candidates:
        tallies = [counts(c, ok, i) for i in range(len(c.steps))]
        mc = [(h + oh) / (k + ot) for h, k, oh, ot in tallies]
        rows.append({
            "id": result.id,
            "prompt": result.problem.question,
            "completions": [clean_step(s, delimiter) for s in c.steps],
            "labels": [v > 0 for v in mc] if settings.mode == "hard" else mc,
            "mc_values": mc,
            # the tallies let a reader recompute the value with fewer rollouts (a subsample of these)
            # or without the own continuations, without rolling out again
            "rollout_hits": [t[0] for t in tallies],
            "rollouts": [t[1] for t in tallies],
            "own_hits": [t[2] for t in tallies],
            "own_tries": [t[3] for t in tallies],
        })
    return rows


def _check_settings(out: Path, settings: LabelSettings) -> None:
    path = out / SETTINGS
    mine = asdict(settings)
    if path.is_file():
        # labels written before own_continuation existed were made without it, and before temperature at the run's
        theirs = {"own_continuation": False, "temperature": None, **json.loads(path.read_text(encoding="utf-8"))}
        if theirs != mine:
            diff = next(k for k in mine if theirs.get(k) != mine[k])
            raise RunDirError(
                f"{out} holds labels made with {diff}={theirs.get(diff)!r}, not {mine[diff]!r}; use another --output"
            )
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(mine, indent=2), encoding="utf-8")


def rollout_params(cfg: RunConfig, settings: LabelSettings, result: ProblemResult, end_markers: tuple[str, ...]) -> SamplingParams:
    # the run's own sampling (unless --temperature): the labels estimate what *this* policy reaches from a prefix
    s = cfg.sampling
    return SamplingParams(
        temperature=s.temperature if settings.temperature is None else settings.temperature, top_p=s.top_p,
        max_new_tokens=settings.max_new_tokens or s.max_new_tokens, stop=end_markers,
        n=settings.rollouts, seed=problem_seed(s.seed + settings.seed + 7919, result.problem),
    )


def label_steps(
    run_dir: str | Path,
    output: str | Path,
    rollouts: int = 8,
    mode: Mode = "hard",
    max_per_problem: int | None = None,
    seed: int = 0,
    max_new_tokens: int | None = None,
    generator: Generator | None = None,
    progress: bool = True,
    own_continuation: bool = True,
    temperature: float | None = None,
) -> LabelOutcome:
    """Label every problem of RUN_DIR not yet in OUTPUT/steps.jsonl; rewrite OUTPUT/dataset at the end."""
    settings = LabelSettings(str(Path(run_dir).resolve()), rollouts, mode, max_per_problem, seed, max_new_tokens,
                             own_continuation, temperature)
    cfg, results = read_run(run_dir)
    out = Path(output)
    # resumable only in a folder label-steps started (its settings file); never the run, never anyone else's
    claim_output(out, [Path(run_dir)], lambda d: (d / SETTINGS).is_file())
    with writing(out):
        return _label_into(out, settings, cfg, results, generator, progress, rollouts, mode)


def _label_into(out: Path, settings: LabelSettings, cfg: RunConfig, results: list[ProblemResult],
                generator: Generator | None, progress: bool, rollouts: int, mode: Mode) -> LabelOutcome:
    _check_settings(out, settings)
    done = {r["id"] for r in read_rows(out / STEPS_JSONL)}
    todo = [r for r in results if r.id not in done]
    failed = 0
    if todo:
        with ExitStack() as built:  # what this builds, it closes; a generator it is given, its caller does
            if generator is None:
                generator = build_generator(cfg.model)
                built.callback(release, generator)
            failed = _label_all(out, settings, cfg, todo, generator, progress, rollouts)
    rows = read_rows(out / STEPS_JSONL)
    shutil.rmtree(out / DATASET, ignore_errors=True)
    # rows labelled before the tallies were kept have none; a resumed dir mixing both keeps the common columns
    tallied = all(TALLIES[0] in r for r in rows)
    save_dataset([r if tallied else {k: v for k, v in r.items() if k not in TALLIES} for r in rows], out / DATASET,
                 stepwise_features(mode, tallied))
    return LabelOutcome(out, len(rows), len(todo) - failed, len(results) - len(todo), failed)


def _label_all(out: Path, settings: LabelSettings, cfg: RunConfig, todo: list[ProblemResult], generator: Generator,
               progress: bool, rollouts: int) -> int:
    """Label each problem and append its rows; the number that failed."""
    from tqdm.auto import tqdm

    fmt = run_prompt_format(cfg, generator.tokenizer)
    failed = 0
    for result in tqdm(todo, desc=f"label-steps k={rollouts}", unit="problem", disable=not progress):
        try:
            rows = label_rows(result, fmt, generator, rollout_params(cfg, settings, result, fmt.end_markers),
                              settings, cfg.search.step_delimiter)
        except Exception as e:  # noqa: BLE001 - one bad problem must not end the labelling; retried on resume
            log.error("label-steps: problem %s failed (%s: %s); it is retried on the next run", result.id,
                      type(e).__name__, e)
            failed += 1
            continue
        append_rows(out / STEPS_JSONL, rows)
    return failed


def stepwise_features(mode: Mode, tallied: bool = True) -> Any:
    """TRL's stepwise-supervision columns: prompt string, completions list of strings, labels list of bool;
    then the Monte Carlo values and (`tallied`) their tallies."""
    from datasets import Features, Value
    from datasets import Sequence as Seq

    return Features({
        "id": Value("string"),
        "prompt": Value("string"),
        "completions": Seq(Value("string")),
        "labels": Seq(Value("bool") if mode == "hard" else Value("float32")),
        "mc_values": Seq(Value("float32")),
        **{name: Seq(Value("int32")) for name in (TALLIES if tallied else ())},
    })
