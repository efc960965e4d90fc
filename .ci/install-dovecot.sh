#!/usr/bin/env bash
# Installs Debian's dovecot-imapd for the IMAP intake tests (issue 4), which start their own
# Dovecot on a loopback port with a throwaway config. Idempotent: quick when already installed.
# Any system Dovecot the package starts is stopped and disabled: the tests must own the port range
# and never talk to a system mailbox.
set -euo pipefail

if command -v dovecot >/dev/null 2>&1 && dpkg -s dovecot-imapd >/dev/null 2>&1; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

bash "$(dirname "$0")/apt-install-no-start.sh" "dovecot.service dovecot.socket" dovecot-core dovecot-imapd

# If something started it anyway, stop it.
if [ -f /run/dovecot/master.pid ]; then
    $SUDO kill "$(cat /run/dovecot/master.pid)" 2>/dev/null || true
fi
command -v dovecot >/dev/null
