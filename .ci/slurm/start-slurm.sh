#!/usr/bin/env bash
# Install (if needed) and start a one-node SLURM on this Debian machine, as root, without
# systemd: munged, slurmctld and slurmd started by hand, accounting off, one partition "cpu"
# holding this node with its real CPU count and memory. Idempotent: a cluster that already
# answers is left alone. Exit status 0 only once `sinfo` shows the node idle.
#
#   sudo .ci/slurm/start-slurm.sh        # then: sinfo; sbatch --wrap hostname; squeue
#   sudo .ci/slurm/stop-slurm.sh
#
# Env: SLURM_START_TIMEOUT (seconds to wait for the node, default 60).
set -euo pipefail
began=$(date +%s%N)
say() { echo "start-slurm: $*"; }
running() { ps -C "$1" -o stat= 2>/dev/null | grep -qv '^Z'; }  # a zombie is not running
elapsed() { local ms=$((($(date +%s%N) - began) / 1000000)); printf '%d.%03d' $((ms / 1000)) $((ms % 1000)); }

if [ "$(id -u)" != 0 ]; then
    say "must run as root (it installs packages and starts daemons)" >&2
    exit 2
fi
if ! command -v apt-get >/dev/null; then
    say "needs a Debian/Ubuntu machine (apt-get)" >&2
    exit 2
fi

CONF=/etc/slurm/slurm.conf
MARKER="# written by sptx-pipeline .ci/slurm/start-slurm.sh"
PARTITION=cpu
STATE=/var/spool/slurmctld
SPOOL=/var/spool/slurmd
LOGS=/var/log/slurm

if sinfo -h -o %T 2>/dev/null | grep -qx idle && grep -qx "$MARKER" "$CONF" 2>/dev/null; then
    say "already running: $(sinfo -h -o '%P %D %T %c CPUs %m MB' | tr '\n' ' ')"
    exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    say "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# --- munge: its runtime directory (normally made by systemd) and a key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
install -d -o munge -g munge -m 0711 /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null || /usr/sbin/create-munge-key -f
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi
munge -n | unmunge >/dev/null || { say "munged does not answer" >&2; exit 1; }

# --- slurm.conf from what slurmd sees on this node
if [ -e "$CONF" ] && ! grep -qx "$MARKER" "$CONF"; then
    say "$CONF exists and was not written by this script; not touching it" >&2
    exit 1
fi
node=$(hostname -s)
hardware=$(slurmd -C | head -1)      # NodeName=... CPUs=... Boards=... RealMemory=...
cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$hardware")
memory=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hardware")
memory=$((memory * 95 / 100))          # headroom: slurmd drains a node that has less than this
topology=$(grep -o 'Boards=[0-9]* SocketsPerBoard=[0-9]* CoresPerSocket=[0-9]* ThreadsPerCore=[0-9]*' <<<"$hardware" || true)
def_mem=$((memory / cpus / 4))        # a job without --mem gets a quarter of its CPUs' share
install -d -m 0755 /etc/slurm "$STATE" "$SPOOL" "$LOGS"
cat >"$CONF" <<CONF
$MARKER
ClusterName=sptx-ci
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# no cgroups in a container: track processes through /proc, bind nothing
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
# accounting off: sacct has nothing to read (status checks go through squeue)
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
# squeue keeps finished jobs for 5 minutes, so a poller sees how they ended
MinJobAge=300
ReturnToService=2
SlurmdTimeout=30
KillWait=5
DefMemPerCPU=$def_mem
NodeName=$node CPUs=$cpus $topology RealMemory=$memory State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF

# --- the daemons: any left from an earlier configuration (or started by the package's
# postinst) are stopped first, so that both read this slurm.conf
if running slurmctld || running slurmd; then
    scontrol shutdown >/dev/null 2>&1 || true   # asks both daemons to exit
    for daemon in slurmd slurmctld; do
        for _ in $(seq 100); do running "$daemon" || break; sleep 0.1; done
        if running "$daemon" && [ -s "/run/$daemon.pid" ]; then kill "$(cat "/run/$daemon.pid")" || true; sleep 1; fi
        if running "$daemon"; then say "$daemon (pid $(pgrep -x "$daemon")) does not stop" >&2; exit 1; fi
    done
fi
slurmctld
slurmd

timeout=${SLURM_START_TIMEOUT:-60}
deadline=$(($(date +%s) + timeout))
until [ "$(sinfo -h -n "$node" -o %T 2>/dev/null)" = idle ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
        say "node $node not idle after ${timeout}s: $(sinfo -h -o '%T %E' 2>&1)" >&2
        tail -n 20 "$LOGS/slurmctld.log" "$LOGS/slurmd.log" >&2 || true
        exit 1
    fi
    state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
    case "$state" in down* | drain*) scontrol update nodename="$node" state=resume 2>/dev/null || true ;; esac
    sleep 0.5
done
say "node $node idle in partition $PARTITION: $cpus CPUs, $memory MB, DefMemPerCPU=$def_mem MB;" \
    "took $(elapsed) s"
