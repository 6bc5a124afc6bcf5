"""Reuse of finished evaluations: ``driving compare`` drives an agent again only when something
that decides its episodes changed.

An evaluation folder (``episodes.csv``, ``summary.json``) gets a ``key.json`` beside them: the
agent spec and description, the SHA-256 of a ``cnn:`` checkpoint file, the scenario's full
config, the seeds, the package versions and a digest of the code that drives and scores
episodes (``agents/``, ``envs/`` and the rollout, metric and statistics modules). A later run
with the same key reads ``summary.json`` instead of driving; any difference drives again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from agents.base import Agent
from driving.dataset import file_sha256
from driving.versions import package_versions
from envs.scenarios import Scenario

ROOT = Path(__file__).resolve().parents[1]
CODE = ("agents", "envs", "driving/rollout.py", "driving/metrics.py", "driving/evaluate.py")
"""What decides an evaluation's numbers, relative to the project root (folders: their .py)."""
KEY_FILE = "key.json"


@cache
def code_digest() -> str:
    """SHA-256 over the paths and contents of :data:`CODE`'s Python files."""
    digest = hashlib.sha256()
    for entry in CODE:
        path = ROOT / entry
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(ROOT)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def evaluation_key(
    spec: str, agent: Agent, scenario: Scenario, seeds: Sequence[int]
) -> dict[str, Any]:
    """The JSON-ready key of evaluating ``agent`` (built from ``spec``) on ``seeds``."""
    name, _, arg = spec.partition(":")
    key = {
        "spec": spec,
        "agent": agent.describe(),
        "checkpoint_sha256": file_sha256(Path(arg)) if name == "cnn" else None,
        "scenario": scenario.to_dict(),
        "seeds": list(seeds),
        "versions": package_versions(),
        "code": code_digest(),
    }
    return json.loads(json.dumps(key, default=str))


def cached_summary(folder: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The summary stored in ``folder`` when its key equals ``key``, else None."""
    try:
        stored = json.loads((folder / KEY_FILE).read_text())
        if stored != key:
            return None
        return json.loads((folder / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def forget(folder: Path) -> None:
    """Drop ``folder``'s key before it is rewritten, so a run cut short is never reused."""
    (folder / KEY_FILE).unlink(missing_ok=True)


def remember(folder: Path, key: dict[str, Any]) -> None:
    """Store ``key`` beside the evaluation just written to ``folder``."""
    (folder / KEY_FILE).write_text(json.dumps(key, indent=1))
