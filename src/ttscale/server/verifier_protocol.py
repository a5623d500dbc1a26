"""The wire format of POST /v1/verify (server/verifier_app.py): every check at the edge, one BadRequest.

The problem travels whole (id, question, gold answer, level, subject) because a verifier may
read any of it: the oracle verifier grades against the gold answer.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from ttscale.server.protocol import parse
from ttscale.types import Problem


class ProblemIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    id: str = ""
    question: str
    answer: str = ""
    level: int | None = None
    subject: str | None = None

    def to_problem(self) -> Problem:
        return Problem(id=self.id, question=self.question, answer=self.answer, level=self.level, subject=self.subject)


def _limits(info: ValidationInfo) -> Any:
    """The server's limits (max_items, max_steps), which `parse_verify` passes as the validation context."""
    if info.context is None:
        raise ValueError("validated without the server's limits (parse_verify passes them)")
    return info.context


class ItemIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    problem: ProblemIn
    steps: list[str]

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: list[str], info: ValidationInfo) -> list[str]:
        limit = _limits(info).max_steps
        if len(v) > limit:
            raise ValueError(f"an item may hold at most {limit} steps (the server's max_steps), got {len(v)}")
        return v


class VerifyRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    model: str | None = None
    items: list[ItemIn]

    @field_validator("items")
    @classmethod
    def _items(cls, v: list[ItemIn], info: ValidationInfo) -> list[ItemIn]:
        limit = _limits(info).max_items
        if not 1 <= len(v) <= limit:
            raise ValueError(f"must hold 1..{limit} items (the server's max_items), got {len(v)}")
        return v


def parse_verify(body: bytes, limits: Any) -> VerifyRequest:
    """The validated request, or BadRequest naming every bad field; `limits` has max_items and max_steps."""
    return parse(VerifyRequest, body, limits)
