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

# policy-rc.d exit 101 keeps the package scripts from starting the service in the first place
# (containers without systemd, and hosts with it); removed again afterwards only if we made it.
made_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    made_policy=1
fi
trap '[ -n "$made_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT

$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends dovecot-core dovecot-imapd >/dev/null

# If something started it anyway, stop it and keep it from coming back on boot.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now dovecot.service dovecot.socket >/dev/null 2>&1 || true
fi
if [ -f /run/dovecot/master.pid ]; then
    $SUDO kill "$(cat /run/dovecot/master.pid)" 2>/dev/null || true
fi
command -v dovecot >/dev/null
