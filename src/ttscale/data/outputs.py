"""Where a command may write, and what a failed write tells the user.

Every command that writes follows `run`'s rules: never into one of its inputs, never into a folder
that is not its own (a non-empty folder it did not write), and a refusal is one line. A disk that is
full or read-only is one line naming the path too, not an OSError traceback.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ttscale.errors import RunDirError

_WHY = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def write_error(path: Path, e: OSError) -> RunDirError:
    """One line: what could not be written, and why in words."""
    why = _WHY.get(e.errno or 0) or e.strerror or str(e)
    return RunDirError(f"cannot write {e.filename or path}: {why}")


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an OSError inside the block into a RunDirError naming `path`."""
    try:
        yield
    except OSError as e:
        raise write_error(path, e) from None


def claim_output(output: Path, inputs: Sequence[Path], own: Callable[[Path], bool], option: str = "--output") -> None:
    """Refuse `output` when it is a file, one of `inputs` (or holds one), or a non-empty folder that `own`
    does not recognise as this command's; then create it."""
    if output.exists() and not output.is_dir():
        raise RunDirError(f"{option} {output} is a file, not a folder; choose a new or empty folder")
    resolved = output.resolve()
    for d in inputs:
        d = d.resolve()
        if resolved == d or resolved in d.parents:
            raise RunDirError(f"{option} {output} is the input {d} (or holds it); choose another folder")
    if output.is_dir() and any(output.iterdir()) and not own(output):
        shown = sorted(e.name for e in output.iterdir())
        held = ", ".join(shown[:3]) + (", ..." if len(shown) > 3 else "")
        raise RunDirError(f"{option} {output} is not empty and was not written by this command (holds {held}); "
                          "choose a new or empty folder")
    with writing(output):
        output.mkdir(parents=True, exist_ok=True)
