"""Recipes -> RunConfig: YAML files and `--set section.key=value` overrides, each value typed by its field.

A setting of a nested section (such as `sampling.thinking`) is a dotted key:
`--set sampling.thinking.min_tokens=512`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from ttscale.config import SECTIONS, RunConfig, nest_flat_search_keys
from ttscale.errors import ConfigError, closest
from ttscale.yaml_values import build_dataclass, field_default, load_yaml

log = logging.getLogger(__name__)


def _build_section(name: str, raw: Any) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"section '{name}' must be a mapping of keys to values, got {raw!r}")
    return build_dataclass(SECTIONS[name], raw, name)


def config_from_dict(raw: dict[str, Any]) -> RunConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"a recipe must be a mapping of sections, got {type(raw).__name__}")
    for name in raw:
        if not isinstance(name, str):
            raise _not_a_section_name(name, "recipe")
        if name not in SECTIONS:
            raise ConfigError(
                f"unknown section '{name}'{closest(name, SECTIONS)}; accepted: {', '.join(SECTIONS)}"
            )
    if isinstance(raw.get("search"), dict):
        search, notes = nest_flat_search_keys(raw["search"])
        raw = {**raw, "search": search}
        for note in notes:
            log.warning(note)
    return RunConfig(**{name: _build_section(name, raw.get(name)) for name in SECTIONS})


def _not_a_section_name(name: Any, where: str) -> ConfigError:
    # YAML reads `1:`, `null:` and `true:` as an int, None and a bool: valid YAML, never a section name
    return ConfigError(f"{where}: top-level key {name!r} ({type(name).__name__}) is not a section name; "
                       f"accepted: {', '.join(SECTIONS)}")


def _check_shape(raw: Any, where: str) -> dict[str, Any]:
    """A recipe is a mapping of section names to mappings; anything else is named before it is used."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a recipe must be a mapping of sections (model:, search:, ...), got {type(raw).__name__}")
    for name, section in raw.items():
        if not isinstance(name, str):
            raise _not_a_section_name(name, where)
        if section is not None and not isinstance(section, dict):
            raise ConfigError(f"{where}: section '{name}' must be a mapping of keys to values, got {section!r}")
    return raw


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` strings; values are parsed as YAML scalars ('3' -> 3, 'null' -> None)."""
    raw = {k: dict(v or {}) for k, v in _check_shape(raw, "recipe").items()}
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"--set {item!r} is invalid; accepted: section.key=value, e.g. search.n=8")
        path, text = item.split("=", 1)
        section, *keys = path.split(".")
        value = load_yaml(text, f"--set {path}", plain_on_error=True) if text != "" else ""
        node = raw.setdefault(section, {})
        for key in keys[:-1]:
            child = node.get(key)
            node[key] = child = dict(child) if isinstance(child, dict) else {}
            node = child
        node[keys[-1]] = value
    return raw


def read_recipe(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"recipe {path} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    raw = load_yaml(text, f"recipe {path}")
    return _check_shape({} if raw is None else raw, f"recipe {path}")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    raw = read_recipe(path) if path is not None else {}
    return config_from_dict(apply_overrides(raw, overrides or []))


def field_help(cls: type) -> list[tuple[str, Any, str]]:
    """(name, default, help) of each field, for `ttscale recipes --fields` and the docs."""
    rows = []
    for f in dataclasses.fields(cls):
        default = field_default(f)
        if dataclasses.is_dataclass(default):
            # a nested section is set key by key (`--set sampling.thinking.min_tokens=512`): list its keys
            rows += [(f"{f.name}.{name}", value, text) for name, value, text in field_help(type(default))]
        else:
            rows.append((f.name, default, f.metadata.get("help", "")))
    return rows

