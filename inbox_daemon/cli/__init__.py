"""The ``inbox-daemon`` command: one module per verb group, the shared helpers in ``common``.

Exit codes: 0 success; 1 not found, refused, or ``check`` found a blocked key; 2 usage or
runtime error; 78 (EX_CONFIG) an invalid configuration.
"""

from __future__ import annotations

from . import _early  # noqa: F401  first: `serve` outlives a SIGHUP while the rest is imported
import click

from .. import __version__
from .audit import audit
from .blocklist import blocklist
from .db import db
from .imap import imap
from .messages import import_, messages
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
                 tokens):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="inbox-daemon")
