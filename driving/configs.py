"""Reading and checking the YAML files users hand us: recipes, overrides.

Every check raises :class:`~envs.errors.UserError` naming the file and the key, so a command
prints one line and exits with status 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from envs.errors import UserError


def load_mapping(path: Path, config_type: type) -> dict[str, Any]:
    """The YAML mapping in ``path`` whose keys must be fields of the dataclass ``config_type``."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise UserError(f"cannot read config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"config {path} is not valid YAML: {exc}".splitlines()[0]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"config {path} must be a mapping")
    valid = {f.name for f in fields(config_type)}
    unknown = set(raw) - valid
    if unknown:
        raise UserError(f"config {path}: unknown key(s) {sorted(unknown)}; valid: {sorted(valid)}")
    return raw


def require_positive_ints(config: Any, path: Any, names: Sequence[str]) -> None:
    """A config file's ``names`` must be integers >= 1 (a :class:`UserError` names the key)."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"config {path}: {name} must be a positive integer, got {value!r}")


def require_bools(config: Any, path: Any, names: Sequence[str]) -> None:
    """A config file's ``names`` must be true or false (a :class:`UserError` names the key)."""
    for name in names:
        if not isinstance(getattr(config, name), bool):
            raise UserError(f"config {path}: {name} must be true or false")


def load_overrides(value: dict[str, Any] | None, path: str | Path | None) -> dict[str, Any]:
    """Scenario overrides: the YAML or JSON file ``path`` (if any) updated by ``value``."""
    merged: dict[str, Any] = {}
    if path:
        try:
            with open(path) as fh:
                loaded = yaml.safe_load(fh) or {}
        except OSError as exc:
            raise UserError(f"cannot read overrides file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise UserError(f"overrides file {path} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise UserError(f"overrides file {path} must hold a mapping")
        merged.update(loaded)
    merged.update(value or {})
    return merged
