"""Typed values from YAML recipes and `--set` strings: a key given twice is refused, and each value is
converted to its field's annotated type (or refused, naming the key and what is accepted)."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

import yaml

from ttscale.errors import ConfigError, closest


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if not isinstance(key, typing.Hashable):
                continue  # SafeLoader itself reports an unhashable key
            if key in seen:
                raise ConfigError(f"duplicate key {key!r} at line {line} (first at line {seen[key]})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


# A recipe is a few dozen values a few levels deep. The caps refuse what only an attack or an accident
# looks like: anchors and aliases that expand exponentially ("billion laughs": under a kilobyte of YAML,
# minutes of work and a config.yaml of tens of MB), or nesting deep enough to overflow Python's stack.
MAX_YAML_VALUES = 100_000
MAX_YAML_DEPTH = 100


def load_yaml(text: str, where: str, plain_on_error: bool = False) -> Any:
    """`text` parsed with duplicate keys refused and its expanded size and depth capped; ConfigError
    naming `where` for anything that is not YAML (or `text` itself, with `plain_on_error`) or over a cap."""
    try:
        value = yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as e:
        if plain_on_error:
            return text
        raise ConfigError(f"{where} is not valid YAML: {e}") from None
    except RecursionError:
        raise ConfigError(f"{where} is nested too deeply (over {MAX_YAML_DEPTH} levels)") from None
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    _check_size(value, where)
    return value


def _check_size(value: Any, where: str) -> None:
    """Walk the value as it expands (every alias counted again), stopping at the first cap crossed."""
    stack = [(value, 1)]
    seen = 0
    while stack:
        v, depth = stack.pop()
        seen += 1
        if seen > MAX_YAML_VALUES:
            raise ConfigError(f"{where} expands to over {MAX_YAML_VALUES} values (anchors and aliases "
                              "that multiply?); a recipe is far smaller")
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(f"{where} is nested too deeply (over {MAX_YAML_DEPTH} levels)")
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for pair in v.items() for x in pair)
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)


def build_dataclass(cls: type, raw: dict[str, Any], where: str) -> Any:
    """`cls(**raw)` with each value converted to its field's type; an unknown key is named with its section."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"unknown key '{where}.{key}'{closest(str(key), known)}; accepted: {', '.join(sorted(known))}")
        kwargs[key] = coerce(value, hints[key], f"{where}.{key}")
    return cls(**kwargs)


def field_default(f: dataclasses.Field[Any]) -> Any:
    """A field's default value (a fresh one for a default_factory), or dataclasses.MISSING."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML/CLI value to the annotated type, or raise naming the key."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}={value!r} is invalid; accepted: a mapping of {tp.__name__} keys")
        return build_dataclass(tp, value, where)
    origin = typing.get_origin(tp)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}={value!r} is invalid; accepted: a mapping")
        return dict(value)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            value = [value]
        return [coerce(v, item, where) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{where}={value!r} is invalid; accepted: true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}={value!r} is invalid; accepted: an integer")
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        # YAML's .inf/.nan and "inf" pass every `>= 0` check below and then break sampling or budgets.
        if number is not None and math.isfinite(number):
            return number
        raise ConfigError(f"{where}={value!r} is invalid; accepted: a finite number")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}={value!r} is invalid; accepted: a string")
    return value
