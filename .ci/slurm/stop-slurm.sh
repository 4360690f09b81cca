#!/usr/bin/env bash
# Stop the one-node SLURM started by start-slurm.sh: cancel every job, stop slurmctld and
# slurmd, stop munged. Idempotent; exit status 0 once no daemon is left.
set -uo pipefail
say() { echo "stop-slurm: $*"; }
running() { ps -C "$1" -o stat= 2>/dev/null | grep -qv '^Z'; }  # a zombie is not running
if [ "$(id -u)" != 0 ]; then say "must run as root" >&2; exit 2; fi

if command -v scancel >/dev/null && squeue -h >/dev/null 2>&1; then
    scancel --full --quiet $(squeue -h -o %i) 2>/dev/null || true
    scontrol shutdown >/dev/null 2>&1 || true
fi
for daemon in slurmctld slurmd; do
    for _ in $(seq 100); do running "$daemon" || break; sleep 0.1; done
    if running "$daemon" && [ -s "/run/$daemon.pid" ]; then
        say "$daemon did not stop; sending SIGTERM"
        kill "$(cat "/run/$daemon.pid")" 2>/dev/null || true
        sleep 1
    fi
done
if running munged; then
    munged --stop >/dev/null 2>&1 || runuser -u munge -- munged --stop >/dev/null 2>&1 || true
fi
left=""
for daemon in slurmctld slurmd munged; do running "$daemon" && left="$left $daemon"; done
if [ -n "$left" ]; then say "still running:$left" >&2; exit 1; fi
say "stopped"
