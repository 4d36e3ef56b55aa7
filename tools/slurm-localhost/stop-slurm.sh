#!/usr/bin/env bash
# stop-slurm.sh - stop the daemons that start-slurm.sh started, and nothing else.
# Part of leaseq (tools/slurm-localhost); see start-slurm.sh.
# Each daemon is identified by the pid file in $SLURM_LOCAL_BASE/run AND its /proc/<pid>/comm
# name, so a stale pid file can never kill an unrelated process. No pkill/killall.
#
#   SLURM_LOCAL_BASE          (default /tmp/slurm-localhost/cluster)
#   SLURM_LOCAL_CANCEL_JOBS=0 don't scancel jobs first (default 1: cancel all jobs so that no
#                             slurmstepd / job processes outlive slurmd)
#   SLURM_LOCAL_KEEP_MUNGE=1  leave munged running
set -uo pipefail

BASE=${SLURM_LOCAL_BASE:-/tmp/slurm-localhost/cluster}
RUN=$BASE/run
CANCEL=${SLURM_LOCAL_CANCEL_JOBS:-1}
KEEP_MUNGE=${SLURM_LOCAL_KEEP_MUNGE:-0}

log() { echo "[stop-slurm $(date +%T)] $*" >&2; }

alive() {    # alive PID COMM -> 0 if PID is a live (non-zombie) process called COMM
    local st
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}
ourpid() {   # ourpid PIDFILE COMM -> prints pid if it is a live process called COMM
    local pf=$1 comm=$2 pid
    [ -s "$pf" ] || return 1
    pid=$(tr -dc '0-9' <"$pf")
    [ -n "$pid" ] && alive "$pid" "$comm" && echo "$pid"
}

stop_one() { # stop_one NAME PIDFILE
    local name=$1 pf=$2 pid
    if ! pid=$(ourpid "$pf" "$name"); then
        if [ -e "$pf" ]; then log "$name: stale pid file $pf removed"; rm -f "$pf"
        else log "$name: not started by us / not running"; fi
        return 0
    fi
    log "$name: SIGTERM pid $pid"
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do alive "$pid" "$name" || break; sleep 0.1; done
    if alive "$pid" "$name"; then
        log "$name: still alive after 10s, SIGKILL pid $pid"
        kill -KILL "$pid" 2>/dev/null
        for _ in $(seq 50); do alive "$pid" "$name" || break; sleep 0.1; done
    fi
    rm -f "$pf"
}

if [ "$CANCEL" = 1 ] && ourpid "$RUN/slurmctld.pid" slurmctld >/dev/null && scontrol ping >/dev/null 2>&1; then
    jobs=$(squeue -h -o '%A' 2>/dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
        log "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null
        for _ in $(seq 150); do   # up to 15s (KillWait=5) for running/completing jobs to go away
            [ -z "$(squeue -h -t RUNNING,COMPLETING,CONFIGURING -o '%A' 2>/dev/null)" ] && break
            sleep 0.1
        done
    fi
fi

stop_one slurmd    "$RUN/slurmd.pid"
stop_one slurmctld "$RUN/slurmctld.pid"     # its child slurmscriptd exits with it
if [ "$KEEP_MUNGE" = 1 ]; then
    log "munged: kept running (SLURM_LOCAL_KEEP_MUNGE=1)"
else
    stop_one munged "$RUN/munged.pid"
fi
log "done"
exit 0
