"""Reuse of finished evaluations: ``driving compare`` drives an agent again only when something
that decides its episodes changed.

An evaluation folder (``episodes.csv``, ``summary.json``) gets a ``key.json`` beside them: the
agent spec and description, the SHA-256 of a ``cnn:`` checkpoint file, the scenario's full
config, the seeds, the package versions and a digest of the code that drives and scores
episodes. A later run with the same key reads ``summary.json`` and ``episodes.csv`` instead of
driving; any difference drives again.

The code is every project module that :mod:`driving.evaluation` imports, directly or through
other project modules (found by reading their ``import`` statements, so a new module joins the
key without anyone listing it), plus the whole of ``agents/`` and ``envs/`` (agents are built
through an import by name that no statement shows).
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from agents.base import Agent
from agents.registry import AgentSpec
from driving.evaluation import Evaluation, EvaluationSummary, read_rows
from driving.files import atomic_write_text, file_sha256
from driving.versions import package_versions
from envs.scenarios import Scenario

ROOT = Path(__file__).resolve().parents[1]
ENTRY = "driving.evaluation"
"""The module whose project imports decide an evaluation's numbers."""
WHOLE_PACKAGES = ("agents", "envs")
"""Packages included whole (agents are imported by name in :mod:`agents.registry`)."""
KEY_FILE = "key.json"


def _module_file(name: str) -> Path | None:
    """The project file of module ``name`` (None when it is not the project's)."""
    parts = name.split(".")
    if parts[0] not in ("driving", *WHOLE_PACKAGES):
        return None
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(file: Path, name: str) -> set[str]:
    """The modules that ``file`` (module ``name``) imports, absolute, at any depth of code."""
    found: set[str] = set()
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # submodules
    return found


def code_files() -> list[Path]:
    """Every project file that decides an evaluation's numbers (see the module docstring)."""
    files = {p for pkg in WHOLE_PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    todo, seen = [ENTRY], set()
    while todo:
        name = todo.pop()
        file = _module_file(name)
        if name in seen or file is None:
            continue
        seen.add(name)
        files.add(file)
        todo.extend(_imports(file, name))
    return sorted(files)


@cache
def code_digest() -> str:
    """SHA-256 over the paths and contents of :func:`code_files`."""
    digest = hashlib.sha256()
    for file in code_files():
        digest.update(str(file.relative_to(ROOT)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def evaluation_key(
    spec: AgentSpec, agent: Agent, scenario: Scenario, seeds: Sequence[int]
) -> dict[str, Any]:
    """The JSON-ready key of evaluating ``agent`` (built from ``spec``) on ``seeds``."""
    checkpoint = spec.checkpoint
    key = {
        "spec": str(spec),
        "agent": agent.describe(),
        "checkpoint_sha256": file_sha256(checkpoint) if checkpoint else None,
        "scenario": scenario.to_dict(),
        "seeds": list(seeds),
        "versions": package_versions(),
        "code": code_digest(),
    }
    return json.loads(json.dumps(key, default=str))


def cached_evaluation(folder: Path, key: dict[str, Any]) -> Evaluation | None:
    """The evaluation (summary and per-episode rows) stored in ``folder`` when its key equals
    ``key``, else None."""
    try:
        stored = json.loads((folder / KEY_FILE).read_text())
        if stored != key:
            return None
        return Evaluation(read_rows(folder), EvaluationSummary.read(folder / "summary.json"))
    except (OSError, ValueError, KeyError, TypeError):  # JSONDecodeError is a ValueError
        return None


def forget(folder: Path) -> None:
    """Drop ``folder``'s key before it is rewritten, so a run cut short is never reused."""
    (folder / KEY_FILE).unlink(missing_ok=True)


def remember(folder: Path, key: dict[str, Any]) -> None:
    """Store ``key`` beside the evaluation just written to ``folder``."""
    atomic_write_text(folder / KEY_FILE, json.dumps(key, indent=1))
