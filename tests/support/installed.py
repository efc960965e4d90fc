"""The project as a user installs it: ``python -m build``, the wheel in a fresh venv outside the
checkout, then ``db upgrade``, ``serve``, one notice over SMTP and ``check``.

Used by tests/test_packaging.py and by .ci/run (``python -m tests.support.installed``), so CI
and the test suite check the same thing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import venv
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "opt-out-notice.eml"
EXAMPLE_KEYS = ("k3v9qz2mw7hxr4t@marketplace.amazon.com", "114-2038475-6619203")  # what EXAMPLE names
PIP = ("-m", "pip", "install", "--quiet", "--disable-pip-version-check")


@dataclass(frozen=True)
class Dists:
    sdist: Path
    wheel: Path  # built from the sdist, as ``python -m build`` does


def build(out: Path, source: Path = REPO) -> Dists:
    """``python -m build``: the sdist first, then a wheel built from that sdist."""
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(source)],
                   check=True, capture_output=True, timeout=300)
    return Dists(next(out.glob("*.tar.gz")), next(out.glob("*.whl")))


def make_venv(where: Path, *requirements: str) -> Path:
    """A new venv at ``where`` with ``requirements`` pip-installed; returns its python."""
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    subprocess.run([str(python), *PIP, *requirements], check=True, capture_output=True, timeout=600)
    return python


def unpack(sdist: Path, into: Path) -> Path:
    """The sdist's files under ``into``; returns its top directory."""
    with tarfile.open(sdist) as tar:
        tar.extractall(into, filter="data")
    return into / sdist.name.removesuffix(".tar.gz")


def smoke(exe: str, work: Path) -> str:
    """``db upgrade``, ``serve`` on a fresh state directory and a free port, the example notice
    over SMTP (smtplib), ``check`` of its keys (exit 1: blocked), stop. Returns check's output;
    raises AssertionError with the daemon's log on any failure."""
    daemon = DaemonProcess(work / "home", exe=exe, cwd=work)
    try:
        upgraded = daemon.cli("db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        daemon.start()
        code, reply = daemon.send(EXAMPLE.read_bytes())
        assert code == 250, (code, reply)
        daemon.wait_event("intake_decision", outcome="opt_out")
        assert daemon.web is not None  # the templates and stylesheet came with the wheel
        for path, expected in (("/login", b"Log in"), ("/static/style.css", b"focus-visible")):
            with urllib.request.urlopen("http://%s:%d%s" % (*daemon.web, path), timeout=30) as page:
                assert page.status == 200 and expected in page.read(), path
        checked = daemon.cli("check", *EXAMPLE_KEYS)
        assert checked.returncode == 1, (checked.returncode, checked.stdout, checked.stderr)
        assert checked.stdout.count("BLOCKED") == len(EXAMPLE_KEYS), checked.stdout
        assert daemon.stop() == 0, daemon.events[-5:]
        return checked.stdout
    finally:
        daemon.ensure_stopped()


# Where .ci/run keeps what main() built (the dists and the venv holding the wheel), so that
# tests/test_packaging.py and tests/test_sdist.py, run next from the same checkout, try those
# instead of building again. Not an INBOX_DAEMON_ name: the daemon refuses settings it does not know.
BUILT_ENV = "CI_WHEEL_BUILT"


def built(kind: str) -> Path | None:
    """What main() left under ``$CI_WHEEL_BUILT``: "dist" (the folder of the sdist and
    wheel) or "python" (the venv's python); None where it is not set or holds nothing."""
    root = os.environ.get(BUILT_ENV)
    if not root:
        return None
    found = Path(root) / ("dist" if kind == "dist" else "venv/bin/python")
    return found if found.exists() else None


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """The sdist and wheel of this checkout: .ci/run's wheel smoke's (``built``), else built
    here, once per worker. A fixture for tests/test_packaging.py and tests/test_sdist.py."""
    kept = built("dist")
    if kept is not None:
        return Dists(next(kept.glob("*.tar.gz")), next(kept.glob("*.whl")))
    return build(tmp_path_factory.mktemp("dist"))


def main() -> int:
    """What .ci/run calls: build, install the wheel in a venv outside the checkout, run the
    smoke there; kept under ``$CI_WHEEL_BUILT`` where that is set, else in a temp dir."""
    keep = os.environ.get(BUILT_ENV)
    with tempfile.TemporaryDirectory(prefix="inbox-daemon-wheel-") as tmp:
        work = Path(keep or tmp)
        dists = build(work / "dist")
        print(f"built {dists.sdist.name} and {dists.wheel.name}", flush=True)
        python = make_venv(work / "venv", str(dists.wheel))
        print(smoke(str(python.with_name("inbox-daemon")), work), end="", flush=True)
        parser = subprocess.run([str(python), str(REPO / "tests" / "support" / "parsed.py"), "0"], cwd=work,
                                capture_output=True, text=True, check=True).stdout.split("\n", 1)[0]
        print(f"wheel smoke: BLOCKED from the installed wheel (its parser: {parser})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
