"""`ttscale run`: dataset -> prompts -> search -> completions.jsonl -> metrics.json.

Problems are searched in small batches and each result is appended as soon as its
batch ends; a re-run skips what the directory already holds.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttscale.backends.base import Generator, build_generator
from ttscale.config import RunConfig
from ttscale.data.datasets import load_problems
from ttscale.data.results import LOG, RunDir, read_results
from ttscale.errors import ConfigError
from ttscale.eval.metrics import run_metrics
from ttscale.grading.select import CONFIDENCE_SELECTIONS
from ttscale.isolation import run_isolating
from ttscale.registry import release
from ttscale.search.base import SearchSettings, Strategy, checked_strategy, run_settings
from ttscale.shards import shard_dir, shard_problems, write_shard_file
from ttscale.types import Problem, ProblemResult
from ttscale.verifiers.base import VERIFIERS, Verifier, build_verifier, with_calibration

log = logging.getLogger("ttscale")


@dataclass(frozen=True)
class RunOutcome:
    run_dir: Path
    metrics: dict[str, Any]
    n_new: int
    n_skipped: int
    n_changed: int = 0  # of n_new: problems whose old row was for a different question or gold answer


def _search_batch(
    strategy: Strategy,
    batch: Sequence[Problem],
    prompts: Sequence[str],
    generator: Generator,
    verifier: Verifier | None,
    settings: SearchSettings,
) -> list[ProblemResult]:
    """Search a batch; a problem that fails alone is recorded in its row and the others go on."""

    def search(pairs: list[tuple[Problem, str]]) -> list[ProblemResult]:
        return strategy.search([p for p, _ in pairs], [q for _, q in pairs], generator, verifier, settings)

    def failed(pair: tuple[Problem, str], _: BaseException) -> ProblemResult:
        err = traceback.format_exc(limit=3)
        log.error("problem %s failed:\n%s", pair[0].id, err)
        return ProblemResult(problem=pair[0], strategy=strategy.name, error=err.strip().splitlines()[-1])

    return run_isolating(search, list(zip(batch, prompts)), failed)


def _preflight(cfg: RunConfig, strategy: Strategy, generator: Generator) -> dict[str, Any]:
    """Refuse, before any problem is searched, what this generator cannot do; a served policy's
    capabilities (what the server honoured when probed) go into run.log and metrics.json."""
    if cfg.search.max_flops_per_problem is not None and not generator.n_params:
        raise ConfigError(
            f"search.max_flops_per_problem={cfg.search.max_flops_per_problem:g} cannot be kept: the {generator.name} "
            "backend does not know the policy's parameter count; set model.n_params, or drop the FLOP cap")
    check = getattr(generator, "check_search", None)
    if check is None:
        return {}
    check(cfg.sampling.temperature, strategy.step_wise, _reads_logprobs(cfg, strategy))
    capabilities = getattr(generator, "capabilities", None)
    return capabilities.to_dict() if capabilities is not None else {}


def _reads_logprobs(cfg: RunConfig, strategy: Strategy) -> bool:
    """Does the search read token log-probabilities (DeepConf, a confidence pick, a confidence verifier)?"""
    verifier = cfg.verifier.name != "none" and getattr(VERIFIERS.get(cfg.verifier.name), "reads_logprobs", False)
    return (cfg.sampling.logprobs > 0 or strategy.reads_logprobs or bool(verifier)
            or cfg.search.selection in CONFIDENCE_SELECTIONS)


def _attach_log(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / LOG, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("ttscale").addHandler(handler)
    logging.getLogger("ttscale").setLevel(logging.INFO)
    return handler


def run(
    cfg: RunConfig,
    recipe_dir: str | Path = ".",
    overwrite: bool = False,
    generator: Generator | None = None,
    verifier: Verifier | None = None,
    progress: bool = True,
    shard: tuple[int, int] | None = None,
) -> RunOutcome:
    """Search every problem not yet in the run dir; `shard=(i, K)` runs only the i-th of K shards."""
    strategy = checked_strategy(cfg, has_verifier=cfg.verifier.name != "none")
    problems = load_problems(cfg.dataset, recipe_dir)  # bad data fails here, before any model loads
    run_dir = RunDir(cfg.output.dir)
    if shard is not None:
        problems = shard_problems(problems, shard[0], shard[1], cfg.search.problems_per_batch)
        run_dir = RunDir(shard_dir(cfg.output.dir, *shard))
    run_dir.prepare(cfg.to_dict(), overwrite=overwrite)
    handler = None
    try:
        if shard is not None:
            write_shard_file(run_dir.path, shard[0], shard[1], [p.id for p in problems])
        handler = _attach_log(run_dir.path)
        done, changed = run_dir.done(problems)
        if changed:
            log.warning("%d problems changed (question or gold answer) since their rows were written, first %r; "
                        "searching them again", len(changed), sorted(changed)[0])
        todo = [p for p in problems if p.id not in done]
        log.info("%d problems, %d already done, %d to search", len(problems), len(problems) - len(todo), len(todo))
        if todo:
            with ExitStack() as built:  # what this run builds, it closes; what it is given, its caller does
                if generator is None:
                    generator = build_generator(cfg.model)
                    built.callback(release, generator)
                server = _preflight(cfg, strategy, generator)
                if server:
                    run_dir.write_server(server)
                if verifier is None:
                    verifier = build_verifier(cfg.verifier)
                    built.callback(release, verifier)
                else:
                    verifier = with_calibration(verifier, cfg.verifier)
                _search_all(cfg, strategy, todo, run_dir, generator, verifier, progress)
        wanted = {p.id: p.content_hash for p in problems}
        results = [r for r in read_results(run_dir.path) if wanted.get(r.id) == r.problem.content_hash]
        metrics = run_metrics(results, cfg.verifier.reduction, cfg.output.subsample_seeds)
        if server := run_dir.server():
            metrics["server"] = server
        run_dir.write_metrics(metrics)
        return RunOutcome(run_dir.path, metrics, len(todo), len(problems) - len(todo), len(changed))
    finally:
        if handler is not None:
            logging.getLogger("ttscale").removeHandler(handler)
            handler.close()
        run_dir.release()


def _search_all(
    cfg: RunConfig,
    strategy: Strategy,
    todo: list[Problem],
    run_dir: RunDir,
    generator: Generator,
    verifier: Verifier | None,
    progress: bool,
) -> None:
    from tqdm.auto import tqdm

    fmt, settings = run_settings(cfg, generator.tokenizer)
    bar = tqdm(total=len(todo), desc=f"{strategy.name} N={cfg.search.n}", unit="problem", disable=not progress)
    tokens, started = 0, time.perf_counter()
    step = cfg.search.problems_per_batch
    for start in range(0, len(todo), step):
        batch = todo[start : start + step]
        results = _search_batch(strategy, batch, [fmt.render(p) for p in batch], generator, verifier, settings)
        for r in results:
            run_dir.append(r)
            tokens += r.budget.generated_tokens
        bar.update(len(results))
        bar.set_postfix(tok_s=f"{tokens / max(time.perf_counter() - started, 1e-9):.0f}")
    bar.close()
