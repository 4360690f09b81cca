"""The cores this process may use: the one rule, for predict, variants, merge, tracks and the
Dask workers alike.

Three limits, the smallest wins: the machine as this process sees it (CPU affinity and cgroup
quota, through ``dask.system.CPU_COUNT``), the SLURM allocation of the job it runs in, and the
threads its caller requested (Snakemake's ``{threads}``, ``--threads``).

Which SLURM variable governs a task's CPUs (sbatch/srun documentation): ``SLURM_CPUS_PER_TASK``
is set only when ``--cpus-per-task`` was given and is what each task may use;
``SLURM_CPUS_ON_NODE`` counts every CPU of the job (or step) on this node, for all of its tasks.
So the per-task value wins where it exists: with ``--ntasks=2 --cpus-per-task=4`` a task gets 4,
not 8. Without ``SLURM_JOB_ID`` the process is not in a job and SLURM variables left in the
environment are ignored. Without cgroups (or with a site's lax TaskPlugin) a job sees every core
of its node, which is why the allocation is read at all.
"""

from __future__ import annotations

import os

import dask.system

__all__ = ["granted_cores", "machine_cores", "slurm_cpus"]

# In order of precedence: a task's own CPUs, then the job's CPUs on this node.
SLURM_CPU_VARIABLES = ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE")


def slurm_cpus() -> int | None:
    """CPUs SLURM granted to this task, or None outside a SLURM job."""
    if not os.environ.get("SLURM_JOB_ID"):
        return None
    for name in SLURM_CPU_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def machine_cores() -> int:
    """Cores the machine gives this process: affinity and cgroup quota, not the SLURM job."""
    return max(1, int(dask.system.CPU_COUNT))


def granted_cores(requested: int | None = None) -> int:
    """The smallest of the machine's cores, the SLURM task's CPUs and ``requested``; >= 1."""
    limits = [machine_cores()]
    granted = slurm_cpus()
    if granted:
        limits.append(granted)
    if requested:
        limits.append(requested)
    return max(1, min(limits))
