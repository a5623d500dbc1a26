"""Seeds derived from what a sample is, never from where it sits in a batch (docs/DESIGN.md, "Where randomness
comes from")."""

from __future__ import annotations

import hashlib
import random

from ttscale.types import Problem


def request_seed(run_seed: int, problem_id: str, *path: object) -> int:
    """The seed of one generation request: a hash of what the request is.

    (run seed, problem id, round, the request's index among its problem's requests), never
    its position in a batch, so a run is the same batched by 1 or 64, sharded or served.
    Below 2^30, so child k's seed + k stays a 31-bit integer that every backend and server accepts.
    """
    key = "|".join(map(str, (run_seed, problem_id, *path))).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % (1 << 30)


def problem_seed(base: int, problem: Problem) -> int:
    """A per-problem seed, so a problem's search does not depend on its batch neighbours' ids."""
    return random.Random(f"{base}:{problem.id}").randrange(1 << 30)
