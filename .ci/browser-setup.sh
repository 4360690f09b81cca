#!/usr/bin/env bash
# What the browser tests (pytest -m browser) need: Debian's chromium and the playwright Python
# package that drives it (playwright's own browser download is never used: the tests launch
# the system chromium through executable_path). Idempotent: installs only what is missing.
# Needs root and apt-get (Debian/Ubuntu); prints the chromium it found.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "browser-setup: chromium is missing and cannot be installed here (needs root and apt-get)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
python -c "import playwright" 2>/dev/null || pip install -q "playwright>=1.40"
echo "browser-setup: $(command -v chromium) ($(chromium --version 2>/dev/null || echo '?'))"
