#!/usr/bin/env bash
# apt-get install PACKAGES without letting their scripts start a system service: policy-rc.d
# exit 101 refuses every start (containers without systemd, and hosts with it); it is removed
# again afterwards only if this script made it. Then any unit that started anyway is disabled.
# Usage: apt-install-no-start.sh UNIT-TO-DISABLE PACKAGE...
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
unit="$1"
shift

made_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    made_policy=1
fi
trap '[ -n "$made_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT

$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    # shellcheck disable=SC2086 # one or more unit names
    $SUDO systemctl disable --now $unit >/dev/null 2>&1 || true
fi
