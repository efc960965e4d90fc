"""What users install: the wheel and sdist ``python -m build`` makes, tried outside the checkout.

The wheel is built once per session (from the sdist, as ``python -m build`` does) and installed
into a fresh venv in a temp directory; the smoke is tests/support/installed.py, which .ci/run
runs too. The sdist's own test run is tests/test_sdist.py, a file of its own so that it runs
beside these.
"""

from __future__ import annotations

import email
import importlib.metadata
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from inbox_daemon.store import migrate
from tests.support import parsed
from tests.support.installed import EXAMPLE_KEYS, REPO, Dists, built, dists, make_venv, smoke

__all__ = ["dists"]  # the fixture

pytestmark = pytest.mark.timeout(600)  # a cold pip cache downloads every dependency


@pytest.fixture(scope="session")
def wheel_python(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh venv, outside the checkout, with only the wheel installed (the
    smoke's, under .ci/run)."""
    kept = built("python")
    if kept is not None and built("dist") is not None:
        return kept
    return make_venv(tmp_path_factory.mktemp("wheel") / "venv", str(dists.wheel))


def test_wheel_ships_migrations_license_and_accelerator(dists: Dists) -> None:
    names = set(zipfile.ZipFile(dists.wheel).namelist())
    versions = {p.name for p in (REPO / "migrations" / "versions").glob("[0-9]*.py")}
    assert {"inbox_daemon/migrations/env.py", "inbox_daemon/migrations/script.py.mako",
            "inbox_daemon/py.typed"} <= names
    assert {f"inbox_daemon/migrations/versions/{v}" for v in versions} <= names
    assert any(n.startswith("inbox_daemon/lookup/_fastpath.") and n.endswith(".so") for n in names) or not shutil.which("cc")
    info = next(n for n in names if n.endswith(".dist-info/METADATA"))
    metadata = email.message_from_bytes(zipfile.ZipFile(dists.wheel).read(info))
    assert metadata["License-Expression"] == "MIT"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_wheel_holds_the_parser_compiled(dists: Dists) -> None:
    """Every module under inbox_daemon/notices but result.py (its types cross to the parser
    worker by pickle) compiled by mypyc (setup.py), beside its source, and the library they
    share; all or none, and all wherever there is a compiler."""
    names = set(zipfile.ZipFile(dists.wheel).namelist())
    sources = {p.relative_to(REPO).with_suffix("").as_posix() for p in (REPO / "inbox_daemon" / "notices").rglob("*.py")}
    sources.remove("inbox_daemon/notices/result")
    compiled = {n.split(".")[0] for n in names if n.startswith("inbox_daemon/notices/") and n.endswith(".so")}
    library = [n for n in names if n.startswith("inbox_daemon_parser__mypyc.") and n.endswith(".so")]
    assert {f"{s}.py" for s in sources} | {"inbox_daemon/notices/result.py"} <= names
    assert (compiled, len(library)) in ((sources, 1), (set(), 0))
    assert compiled or not shutil.which("cc")


def test_installed_parser_reads_every_sample_as_the_checkout_does(wheel_python: Path) -> None:
    """The wheel's compiled parser against the checkout's pure Python (an editable install is
    never compiled): every sample under tests/data and damaged copies of each, whole results.
    mypyc checks types at run time, so a value typeshed did not foresee (a compat32 ``Header``
    where it says ``str``) would turn into "parser error: TypeError" here."""
    assert parsed.build() == "pure"
    ran = subprocess.run([str(wheel_python), str(REPO / "tests" / "support" / "parsed.py")],
                         capture_output=True, text=True, cwd=wheel_python.parents[2], timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    build, *lines = ran.stdout.splitlines()
    assert build == ("compiled" if shutil.which("cc") else "pure")
    expected = list(parsed.results())
    assert len(lines) == len(expected) > 4000
    assert [pair for pair in zip(lines, expected) if pair[0] != pair[1]][:3] == []


def test_sdist_holds_every_tracked_file(dists: Dists) -> None:
    """Migrations, docs, deploy, examples, tests, benches, the C source: all of the checkout."""
    with tarfile.open(dists.sdist) as tar:
        top = dists.sdist.name.removesuffix(".tar.gz")
        shipped = {name.removeprefix(top + "/") for name in tar.getnames()}
    assert {"migrations/env.py", "docs/query-protocol.md", "deploy/inbox-daemon.service",
            "examples/opt-out-notice.eml", "tests/conftest.py", "inbox_daemon/lookup/_fastpath.c",
            "LICENSE", "README.md"} <= shipped
    if shutil.which("git") and (REPO / ".git").exists():
        tracked = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True)
        missing = {f for f in tracked.stdout.splitlines() if (REPO / f).is_file()} - shipped - {".gitignore"}
        assert not missing


def test_installed_wheel_finds_its_own_migrations(wheel_python: Path) -> None:
    found = subprocess.run(
        [str(wheel_python), "-c", "from inbox_daemon.store import migrate; print(migrate.migrations_dir(), migrate.head())"],
        capture_output=True, text=True, check=True, cwd=wheel_python.parents[2],
    ).stdout.split()
    assert Path(found[0]).is_relative_to(wheel_python.parents[1])  # inside the venv, not the checkout
    assert found[1] == migrate.head()  # the checkout's newest revision


def test_installed_wheel_serves_and_blocks_the_example_notice(wheel_python: Path, tmp_path: Path) -> None:
    out = smoke(str(wheel_python.with_name("inbox-daemon")), tmp_path)
    assert "BLOCKED" in out


def test_requirements_admit_what_is_installed_and_cap_aioimaplib() -> None:
    """The upper bound on aioimaplib (intake/imap_client.py reaches into its protocol object)
    must admit the version the tests ran against."""
    requirements = [Requirement(r) for r in importlib.metadata.requires("inbox-daemon") or []]
    for req in requirements:
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            assert req.specifier.contains(importlib.metadata.version(req.name)), req
    (imap,) = [r for r in requirements if r.name == "aioimaplib"]
    assert any(spec.operator == "<" for spec in imap.specifier)


def test_readme_needs_nothing_outside_the_repository() -> None:
    """The quick start and "Try it" use the repository's own files: no ``../`` path, the sample
    notice exists and the keys ``check`` asks for are the ones it names."""
    readme = (REPO / "README.md").read_text()
    blocks = readme.split("```")[1::2]
    assert not [b for b in blocks if "../" in b]
    assert "examples/opt-out-notice.eml" in readme and (REPO / "examples" / "opt-out-notice.eml").is_file()
    assert f"inbox-daemon check {' '.join(EXAMPLE_KEYS)}" in readme
