#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver for the browser tests (tests/web/test_browser.py),
# which drive them through Selenium with the system driver (nothing is downloaded). Idempotent.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
command -v chromium >/dev/null && command -v chromedriver >/dev/null
