"""Imported first by the command package: for ``inbox-daemon serve``, a SIGHUP from here on is
remembered and applied once the daemon is ready, instead of ending the process by its default
action while the heavier modules (SQLAlchemy, aiosmtpd…) are still being imported."""

from __future__ import annotations

import sys

from ..systemd import catch_early_hangup

__all__: list[str] = []

if sys.argv[1:2] == ["serve"]:
    catch_early_hangup()
