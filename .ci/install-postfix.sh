#!/usr/bin/env bash
# Installs Debian's postfix (and swaks) for the MTA tests, which start their own throwaway
# Postfix on loopback ports (tests/support/postfix.py). Idempotent: quick when installed.
# Non-interactive: debconf "No configuration", and policy-rc.d keeps the package scripts from
# starting a system Postfix; a main.cf is still needed for postconf, so a minimal one is written
# when the package left none.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if ! command -v postfix >/dev/null 2>&1 || ! command -v swaks >/dev/null 2>&1; then
    echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
    bash "$(dirname "$0")/apt-install-no-start.sh" postfix.service postfix swaks
fi

if [ ! -e /etc/postfix/main.cf ]; then
    printf 'compatibility_level = 3.6\nalternate_config_directories =\n' | $SUDO tee /etc/postfix/main.cf >/dev/null
fi
command -v postfix >/dev/null && command -v postmap >/dev/null
