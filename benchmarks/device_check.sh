#!/usr/bin/env bash
# The GPU check: one command, one table (benchmarks/device_check.py says what it measures).
# On a machine without a GPU it runs its CPU parts, says what it skipped and exits 0.
#   bash benchmarks/device_check.sh [--quick] [--outdir DIR]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYTHONPATH="$(dirname "$here")${PYTHONPATH:+:$PYTHONPATH}"
# DEVICE_CHECK_TIMEOUT: seconds before it is stopped (470 keeps a GPU run under 8 minutes)
exec timeout "${DEVICE_CHECK_TIMEOUT:-470}" python "$here/device_check.py" "$@"
