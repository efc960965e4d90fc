"""The layout holds: a lower layer never imports a higher one (README, *Development*), and
every command module imports on its own (no import circle).

Read from the source with ``ast``, so an import inside a function counts as well."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "inbox_daemon"

# What each folder must not import, as the README's Development section says.
FORBIDDEN = {
    "notices": {"config", "log", "daemon", "cli", "store", "trust", "processing", "intake", "lookup", "web"},
    "trust": {"config", "log", "daemon", "cli", "store", "processing", "intake", "lookup", "web"},
    "store": {"daemon", "cli", "trust", "processing", "intake", "lookup", "web"},
    "processing": {"daemon", "cli", "intake", "lookup", "web"},
    "lookup": {"daemon", "cli", "intake", "processing", "trust", "web"},
    "intake": {"daemon", "cli", "lookup", "web"},
    # The web pages and API: processing, store, lookup, config, log, errors and keys only.
    "web": {"daemon", "cli", "intake", "trust", "notices", "client", "metrics", "privacy", "progress", "reload",
            "state", "systemd"},
}


def imported(path: Path, source: str | None = None) -> set[str]:
    """The ``inbox_daemon`` top-level parts (``store``, ``errors`` …) a module imports."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            elif node.module:
                names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "inbox_daemon" and len(parts) > 1:
                found.add(parts[1])
    return found


def modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_lower_layers_never_import_higher_ones(folder: str) -> None:
    wrong = {
        str(path.relative_to(PACKAGE)): sorted(imported(path) & FORBIDDEN[folder])
        for path in modules(folder)
        if imported(path) & FORBIDDEN[folder]
    }
    assert wrong == {}


def test_the_check_sees_a_forbidden_import() -> None:
    """The checker itself: relative and absolute forms, and imports inside functions."""
    sample = PACKAGE / "store" / "raw.py"
    text = sample.read_text() + "\n\ndef _late() -> None:\n    from ..trust import decide\n    import inbox_daemon.lookup\n"
    assert imported(sample, text) & FORBIDDEN["store"] == {"trust", "lookup"}
    assert imported(PACKAGE / "store" / "admission.py", "from .. import processing\n") == {"processing"}


@pytest.mark.parametrize("name", sorted(p.stem for p in (PACKAGE / "cli").glob("*.py")))
def test_every_command_module_imports_alone(name: str) -> None:
    module = "inbox_daemon.cli" if name == "__init__" else f"inbox_daemon.cli.{name}"
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
