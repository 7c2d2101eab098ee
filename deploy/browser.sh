#!/usr/bin/env bash
# Installs Debian's headless browser for the dashboard's browser tests: chromium and the matching chromedriver
# (/usr/bin/chromium, /usr/bin/chromedriver). Nothing is downloaded besides the two Debian packages: the tests drive
# this browser through Selenium with the Debian driver, never a browser build of their own.
#
#   bash deploy/browser.sh        (deploy/test.sh calls it; a no-op when both are installed)
set -euo pipefail

log() { printf '[browser] %s\n' "$*" >&2; }

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  log "chromium and chromium-driver are missing and installing them needs root: sudo apt-get install chromium chromium-driver"
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
log "installing chromium and chromium-driver (apt)"
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
log "$(/usr/bin/chromium --version 2>/dev/null || echo 'chromium installed')"
