"""The project's own promises: CI runs the README's test command; layout rules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPONENTS = {"backend", "consumer", "bot", "tui"}


def _readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    return re.findall(r"^(\./scripts/setup && .+)$", readme, flags=re.MULTILINE)


def test_readme_gives_two_fresh_machine_commands() -> None:
    """The README has one command for the dashboard and one for the tests."""
    commands = _readme_commands()

    assert any("recipe-pipeline dashboard" in command for command in commands)
    assert any("pytest" in command for command in commands)


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run calls the README's test command verbatim."""
    test_command = next(c for c in _readme_commands() if "pytest" in c)

    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_shared_package_imports_no_component() -> None:
    """pipeline_core never imports backend, consumer, bot or tui."""
    for path in (ROOT / "pipeline_core").rglob("*.py"):
        assert not _imported_packages(path) & COMPONENTS, path


def test_components_do_not_import_each_other() -> None:
    """backend, consumer and bot import only the shared package; tui may add bot."""
    allowed = {"backend": set(), "consumer": set(), "bot": set(), "tui": {"bot"}}
    for component, may_import in allowed.items():
        for path in (ROOT / component).rglob("*.py"):
            others = _imported_packages(path) & (COMPONENTS - {component})
            assert others <= may_import, f"{path} imports {others}"
