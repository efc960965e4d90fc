"""The layout holds: each part of the package imports only what the README's *Development*
table allows it (an allow-list: a new import either fits the picture or changes it on purpose,
here and in the README), every part is in the list, and every command module imports on its
own (no import circle).

Read from the source with ``ast``, so an import inside a function (or under TYPE_CHECKING)
counts as well."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "inbox_daemon"

EVERYTHING = {"notices", "trust", "store", "processing", "intake", "lookup", "web", "cli", "daemon", "config", "reload",
              "state", "metrics", "client", "errors", "keys", "secret", "log", "systemd", "progress", "providers", "privacy", "exchange",
              "__init__", "__main__"}
LEAVES = {"errors", "keys", "secret"}  # the exception tree, the one key validator, the one secret wrapper: anyone may use them
# What each folder and top-level module may import of the package (besides itself).
ALLOWED: dict[str, set[str]] = {
    # folders, lowest first
    "notices": {"errors", "keys"},  # keys: the one rule for order ids and relay addresses
    "trust": {"notices", "errors"},
    "store": {"notices", "log", "privacy"} | LEAVES,
    "processing": {"store", "trust", "notices", "config", "log", "privacy"} | LEAVES,
    "intake": {"processing", "store", "config", "log", "progress"} | LEAVES,
    "lookup": {"store", "config", "log", "client", "privacy"} | LEAVES,
    "web": {"processing", "store", "lookup", "config", "log"} | LEAVES,  # handlers only: the rules live below
    "cli": set(EVERYTHING),
    "__main__": {"cli"},  # python -m inbox_daemon
    # top-level modules
    "__init__": set(),
    "errors": set(),
    "keys": set(),
    "secret": set(),
    "log": set(),
    "systemd": set(),
    "progress": set(),
    "providers": set(),  # IMAP provider presets: data only
    "privacy": {"errors", "keys", "secret"},  # the privacy key file: pseudonym and data keys (keys.digest)
    "config": {"errors", "providers"},
    "client": {"errors", "keys", "exchange"},  # the sender tools' library: the one key rule, nothing of the daemon
    "exchange": {"errors", "keys"},  # the client's sans-IO wire rules and connection state
    "reload": {"config"} | LEAVES,
    "state": {"config", "log"} | LEAVES,
    "metrics": {"lookup", "log"} | LEAVES,  # the listeners' shared limits (lookup/limits.py)
    "daemon": EVERYTHING - {"cli"},
}


def parts() -> set[str]:
    """Every folder and top-level module of the package."""
    return {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}


def part_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported(path: Path, source: str | None = None) -> set[str]:
    """The ``inbox_daemon`` parts (``store``, ``errors`` …) a module imports; a name that is no
    part (``from .. import __version__``) is the package's own ``__init__``."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    known = parts()
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
                names = [node.module] if node.module != "inbox_daemon" else [f"inbox_daemon.{a.name}" for a in node.names]
        for name in names:
            parts_ = name.split(".")
            if parts_[0] == "inbox_daemon" and len(parts_) > 1:
                found.add(parts_[1] if parts_[1] in known else "__init__")
    return found


def violations(part: str, files: dict[Path, str | None]) -> dict[str, list[str]]:
    """Per module of ``part``: the parts it imports that it may not."""
    wrong = {}
    for path, source in files.items():
        extra = imported(path, source) - ALLOWED[part] - {part}
        if extra:
            wrong[str(path.relative_to(PACKAGE))] = sorted(extra)
    return wrong


def modules(part: str) -> list[Path]:
    folder = PACKAGE / part
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [PACKAGE / f"{part}.py"]


def test_every_part_of_the_package_is_in_the_allow_list() -> None:
    assert parts() - set(ALLOWED) == set(), "add the new part to ALLOWED and to the README's Development table"


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_each_part_imports_only_what_it_may(part: str) -> None:
    files = modules(part)
    if not any(f.is_file() for f in files):
        pytest.skip(f"{part} does not exist yet")
    assert violations(part, {f: None for f in files if f.is_file()}) == {}


def test_the_check_sees_a_forbidden_import() -> None:
    """The checker itself: relative and absolute forms, imports inside functions, and a part
    that imports what it was never allowed, even a leaf it may not use."""
    sample = PACKAGE / "store" / "raw.py"
    text = sample.read_text() + "\n\ndef _late() -> None:\n    from ..trust import decide\n    import inbox_daemon.lookup\n"
    assert violations("store", {sample: text}) == {"store/raw.py": ["lookup", "trust"]}
    assert violations("store", {PACKAGE / "store" / "admission.py": "from .. import processing\n"}) == {
        "store/admission.py": ["processing"]}
    assert violations("notices", {PACKAGE / "notices" / "parser.py": "from inbox_daemon import log\n"}) == {
        "notices/parser.py": ["log"]}
    assert violations("client", {PACKAGE / "client.py": "from .config import Config\n"}) == {"client.py": ["config"]}
    assert violations("store", {sample: sample.read_text()}) == {}


@pytest.mark.slow  # a Python process per command module
@pytest.mark.parametrize("name", sorted(p.stem for p in (PACKAGE / "cli").glob("*.py")))
def test_every_command_module_imports_alone(name: str) -> None:
    module = "inbox_daemon.cli" if name == "__init__" else f"inbox_daemon.cli.{name}"
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
