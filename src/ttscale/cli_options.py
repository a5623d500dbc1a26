"""Command-line options generated from a settings dataclass: its fields' names, types, defaults and help
text are the options' (TRL's habit: TrlParser builds its options from dataclasses), so no command retypes
what the dataclass already holds."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

import typer

from ttscale.yaml_values import field_default

F = TypeVar("F", bound=Callable[..., Any])


def field_options(cls: type, skip: Sequence[str] = ()) -> Callable[[F], F]:
    """Decorator of a typer command: one `--option` per field of the dataclass `cls`, except `skip`.

    The command declares a `fields: dict[str, Any]` parameter and gets the options' values
    there, by field name, to build `cls(**fields)` itself (so the dataclass validates them
    and the command reports its error the way it reports any other).
    """
    hints = typing.get_type_hints(cls)
    options = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = field_default(f)
        option = typer.Option(help=f.metadata.get("help", ""))
        options.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                         annotation=Annotated[hints[f.name], option]))
    names = {p.name for p in options}

    def decorate(command: F) -> F:
        signature = inspect.signature(command)
        # resolved here: the command's module may hold its annotations as strings (PEP 563)
        resolved = typing.get_type_hints(command, include_extras=True)
        own = [p.replace(annotation=resolved.get(p.name, p.annotation))
               for p in signature.parameters.values() if p.name != "fields"]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            fields = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
            return command(*args, fields=fields, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=own + options)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
