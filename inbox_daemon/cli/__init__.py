"""The ``inbox-daemon`` command: one module per verb group, the shared helpers in ``common``.

Exit codes: 0 success; 1 not found, refused, or ``check`` found a blocked key; 2 usage or
runtime error; 78 (EX_CONFIG) an invalid configuration.
"""

from __future__ import annotations

from . import _early  # noqa: F401  first: `serve` outlives a SIGHUP while the rest is imported
import importlib.util
import sys

import click

from .. import __version__
from .audit import audit
from .blocklist import blocklist
from .db import db
from .imap import imap
from .messages import import_, messages
from .privacy import privacy
from .quarantine import quarantine
from .sellers import forwarders, sellers
from .serve import check, parse, serve
from .users import tokens, users

__all__ = ["main", "cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="inbox-daemon")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML config file for every subcommand (a subcommand's own --config wins).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Take in Amazon's buyer opt-out notices and keep the blocklist seller tools ask before sending."""
    ctx.obj = {"config_path": config_path}


for _command in (serve, parse, check, db, blocklist, messages, import_, sellers, forwarders, quarantine, audit, imap, users,
                 tokens, privacy):
    cli.add_command(_command)


def main() -> None:
    _children_skip_this_script()
    cli(prog_name="inbox-daemon")


def _children_skip_this_script() -> None:
    """The processes the daemon spawns (the SMTP process, parser workers, CSV readers) start
    without running the ``inbox-daemon`` script again.

    multiprocessing's spawn runs the parent's main script once more in each child, as
    ``__mp_main__``, so that what the script defines can be unpickled there
    (https://docs.python.org/3/library/multiprocessing.html#the-spawn-and-forkserver-start-methods).
    This script only imports ``main``: every child imported the whole command package (the
    store, the web app…), about 0.5 s of CPU and 45 MB a process, the parser worker for nothing.
    Naming the script's module ``inbox_daemon.__main__``, as ``python -m inbox_daemon`` does,
    makes spawn leave it alone: it reruns no package's ``__main__``."""
    script = sys.modules["__main__"]
    if getattr(script, "__spec__", None) is None:
        script.__spec__ = importlib.util.find_spec("inbox_daemon.__main__")
