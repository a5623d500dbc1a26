"""The Verifier protocol and the verifier registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ttscale.config import VerifierConfig
from ttscale.registry import Registry
from ttscale.types import Problem


@runtime_checkable
class Verifier(Protocol):
    """Scores reasoning steps: for each (problem, steps) one score in [0, 1] per step.

    Steps arrive without their delimiter. Partial solutions are scored the same way
    as complete ones; beam search relies on a step's score not changing when later
    steps are appended (true for causal PRMs).

    A verifier with `reads_logprobs = True` scores from what the policy recorded, not from text:
    the search calls its `score_logprobs(problems, steps, rows)`, rows[i][j] being the top-k
    log-probability rows of steps[i][j]'s tokens (verifiers/self_certainty.py).
    """

    name: str
    n_params: int

    def score(self, problems: Sequence[Problem], steps: Sequence[Sequence[str]]) -> list[list[float]]: ...

    def count_tokens(self, problem: Problem, steps: Sequence[str]) -> int: ...


VERIFIERS: Registry[Verifier] = Registry("verifier")
VERIFIERS.register("fake", "ttscale.verifiers.fake:FakeVerifier")
VERIFIERS.register("rlhflow", "ttscale.verifiers.rlhflow:RLHFlowPRM")
VERIFIERS.register("math_shepherd", "ttscale.verifiers.math_shepherd:MathShepherdPRM")
VERIFIERS.register("qwen_prm", "ttscale.verifiers.qwen_prm:QwenPRM")
VERIFIERS.register("skywork", "ttscale.verifiers.skywork:SkyworkPRM")
VERIFIERS.register("lm_judge", "ttscale.verifiers.lm_judge:LMJudge")
VERIFIERS.register("think_judge", "ttscale.verifiers.think_judge:ThinkingJudge")
VERIFIERS.register("arithmetic_rules", "ttscale.verifiers.arithmetic:ArithmeticRulesVerifier")
VERIFIERS.register("oracle", "ttscale.verifiers.oracle:OracleVerifier")
VERIFIERS.register("trained_prm", "ttscale.verifiers.trained_prm:TrainedPRM")
VERIFIERS.register("http", "ttscale.verifiers.http:HTTPVerifier")
VERIFIERS.register("self_certainty", "ttscale.verifiers.self_certainty:SelfCertaintyVerifier")


def build_verifier(cfg: VerifierConfig) -> Verifier | None:
    if cfg.name == "none":
        return None
    return with_calibration(VERIFIERS.get(cfg.name)(cfg), cfg)


def with_calibration(verifier: Verifier | None, cfg: VerifierConfig) -> Verifier | None:
    """`verifier` scoring through `cfg.calibration` when one is set (once: a verifier already calibrated
    by it is returned as it is), so a verifier handed to a run scores as one the run would build."""
    from ttscale.verifiers.calibration import CalibratedVerifier

    if verifier is None or cfg.calibration is None:
        return verifier
    if isinstance(verifier, CalibratedVerifier):
        if verifier.knots != [tuple(k) for k in cfg.calibration]:
            from ttscale.errors import ConfigError

            raise ConfigError("the verifier given is calibrated by a map other than verifier.calibration")
        return verifier
    return CalibratedVerifier(verifier, cfg.calibration)
