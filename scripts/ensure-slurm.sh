#!/usr/bin/env bash
# ensure-slurm.sh - make sure a real local Slurm answers, for the real-Slurm tests
# (tests/slurm_real.rs). Idempotent; use it in the test command:
#
#   scripts/ensure-slurm.sh && LEASEQ_SLURM_TESTS=require cargo test --test slurm_real
#
# Fast path (well under a second): sinfo/squeue/sbatch/scancel/scontrol on PATH, the controller
# answers `scontrol ping`, and a node is idle/mixed/allocated -> exit 0 without touching anything.
# Otherwise (root needed) tools/slurm-localhost/start-slurm.sh installs slurm-wlm/munge with
# apt-get if missing, writes the config, starts munged/slurmctld/slurmd and runs a smoke job;
# then tools/slurm-localhost/verify-slurm.sh checks what leaseq relies on
# (ENSURE_SLURM_VERIFY=0 skips that).
#
# When it has to start a cluster it advertises 8 CPUs and 2 fake GPUs, so several test jobs
# run at once and --gpus-per-node is exercised (override with SLURM_LOCAL_CPUS /
# SLURM_LOCAL_GPUS; see start-slurm.sh). An already running cluster is used as it is.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=$ROOT/tools/slurm-localhost
T0=$(date +%s.%N)
log() { echo "[ensure-slurm $(date +%T)] $*" >&2; }
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }

cluster_ok() {
    local p state
    for p in sinfo squeue sbatch scancel scontrol; do command -v "$p" >/dev/null 2>&1 || return 1; done
    timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP' || return 1
    state=$(timeout 10 sinfo -h -o '%T' 2>/dev/null | tr '\n' ' ' || true)
    case " $state" in *" idle"*|*" mixed"*|*" allocated"*) return 0 ;; esac
    return 1
}

if cluster_ok; then
    log "Slurm is up: $(scontrol ping 2>/dev/null | head -n1) ($(elapsed)s)"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    log "ERROR: no usable Slurm here and starting one needs root (run: sudo $TOOLS/start-slurm.sh)"
    exit 1
fi

export SLURM_LOCAL_CPUS=${SLURM_LOCAL_CPUS:-8}
export SLURM_LOCAL_GPUS=${SLURM_LOCAL_GPUS:-2}
log "no usable Slurm; starting one (CPUs=$SLURM_LOCAL_CPUS GPUs=$SLURM_LOCAL_GPUS)"
"$TOOLS/start-slurm.sh"
if [ "${ENSURE_SLURM_VERIFY:-1}" = 1 ]; then
    "$TOOLS/verify-slurm.sh"
fi
cluster_ok || { log "ERROR: Slurm started but is not usable (see messages above)"; exit 1; }
log "Slurm is up after $(elapsed)s"
