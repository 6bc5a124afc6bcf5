"""The package layout is the architecture: imports point down only (see ../shared/DESIGN.md).

``envs`` <- ``agents`` <- the ``driving`` library <- ``driving.train`` <- ``driving.commands``;
command files never import each other, and the library parses no arguments.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import REPO


def _modules(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports are not used here)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            found.add(node.module or "")
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def _library() -> list[Path]:
    """The library modules (``__main__.py`` is the console entry point, a command)."""
    return [
        p for p in _modules("driving") if p.parent == REPO / "driving" and p.name != "__main__.py"
    ]


def _under(names: set[str], package: str) -> set[str]:
    return {n for n in names if n == package or n.startswith(package + ".")}


@pytest.mark.parametrize("path", _library(), ids=_name)
def test_the_library_imports_neither_training_nor_commands_and_parses_no_arguments(path):
    names = _imports(path)
    assert not _under(names, "driving.train") and not _under(names, "driving.commands")
    if path.name != "__main__.py":
        assert "argparse" not in names
        assert "main" not in {
            n.name for n in ast.parse(path.read_text()).body if hasattr(n, "name")
        }


@pytest.mark.parametrize("path", _modules("driving/train"), ids=_name)
def test_training_does_not_import_commands(path):
    assert not _under(_imports(path), "driving.commands")


@pytest.mark.parametrize("path", _modules("driving/commands"), ids=_name)
def test_commands_do_not_import_each_other(path):
    shared = {"driving.commands._args"}
    others = _under(_imports(path), "driving.commands") - shared
    # `from driving.commands._args import X` also lists `driving.commands._args.X`
    assert not {n for n in others if not n.startswith("driving.commands._args.")}, others


def test_every_command_is_in_the_dispatch_table_and_named_after_it():
    from driving.commands import COMMANDS

    targets = {entry.partition(":")[0] for entry, _ in COMMANDS.values()}
    files = {_name(p) for p in _modules("driving/commands") if p.name != "__init__.py"}
    assert files - {"driving.commands._args"} == targets
    for words, (entry, _) in COMMANDS.items():
        module = entry.partition(":")[0]
        assert module.split(".")[2:] in (list(words), ["fit"]), (words, entry)


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [("envs", ("torch", "agents", "driving", "lightning")), ("agents", ("driving",))],
)
def test_lower_layers_do_not_import_upper_ones(folder, forbidden):
    for path in _modules(folder):
        for package in forbidden:
            assert not _under(_imports(path), package), (path, package)
