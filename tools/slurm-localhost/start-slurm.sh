#!/usr/bin/env bash
# start-slurm.sh - bring up a REAL single-node Slurm cluster (munged + slurmctld + slurmd)
# on this machine, without systemd and without cgroups. Debian 12 / Ubuntu, must run as root.
#
# Part of leaseq: the real-Slurm tests (tests/slurm_real.rs) run against this cluster, and
# scripts/ensure-slurm.sh (what the test command calls) runs this script when no controller
# answers. Derived from the team's slurm-localhost scripts; owned and maintained here.
#
# Idempotent:
#   * installs slurmctld slurmd slurm-client munge (apt, --no-install-recommends) only if missing
#   * (re)writes /etc/slurm/slurm.conf (+ gres.conf); if it changed while our daemons run,
#     they are restarted (comment lines are ignored when comparing)
#   * starts only daemons that are not already running (tracked by pid files in $BASE/run);
#     a slurmctld/slurmd that already answers on 6817/6818 but was started by someone else
#     is used as it is (with a warning), never killed
#   * waits until `sinfo` shows the node "idle" (timeout -> clear error + log tails, exit 1)
#
# Environment knobs (all optional):
#   SLURM_LOCAL_BASE     state/log/pid dir            (default /tmp/slurm-localhost/cluster)
#   SLURM_LOCAL_TIMEOUT  seconds to wait for "idle"   (default 60)
#   SLURM_LOCAL_CPUS     advertise N CPUs instead of the real count (adds
#                        SlurmdParameters=config_overrides) -> N jobs can run at once
#   SLURM_LOCAL_GPUS     advertise N fake GPUs (GresTypes=gpu, Gres=gpu:N, gres.conf File= pointing
#                        at /dev/null clones in $BASE/fakedev): --gpus-per-node jobs can run
#   SLURM_LOCAL_FRESH=1  wipe controller state (job ids restart at 1) before starting
#   SLURM_LOCAL_PARTITION partition name               (default debug)
#   SLURM_LOCAL_SMOKE=0  skip the end-to-end smoke job (default 1: run one, wait for COMPLETED)
#
# Stop with stop-slurm.sh (same directory); it only kills what this script started.
set -euo pipefail

BASE=${SLURM_LOCAL_BASE:-/tmp/slurm-localhost/cluster}
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-60}
CPUS_OVERRIDE=${SLURM_LOCAL_CPUS:-}
GPUS=${SLURM_LOCAL_GPUS:-0}
FRESH=${SLURM_LOCAL_FRESH:-0}
PARTITION=${SLURM_LOCAL_PARTITION:-debug}
CONF=/etc/slurm/slurm.conf
GRESCONF=/etc/slurm/gres.conf
RUN=$BASE/run
LOGDIR=$BASE/log
CTLD_STATE=$BASE/ctld-state
SPOOL=$BASE/slurmd-spool
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T0=$(date +%s.%N)

log() { echo "[start-slurm $(date +%T)] $*" >&2; }
die() {
    echo "[start-slurm] ERROR: $*" >&2
    for f in "$LOGDIR/slurmctld.log" "$LOGDIR/slurmd.log" /var/log/munge/munged.log; do
        [ -r "$f" ] && { echo "---- last lines of $f" >&2; tail -n 15 "$f" >&2; }
    done
    exit 1
}
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }

# pid_alive PIDFILE COMM -> 0 if the pid in PIDFILE is a live process named COMM
pid_alive() {
    local pf=$1 comm=$2 pid
    [ -s "$pf" ] || return 1
    pid=$(tr -dc '0-9' <"$pf")
    [ -n "$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] &&
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]
}
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# the config without comment lines: what decides whether the daemons need a restart
strip_comments() { grep -v '^[[:space:]]*#' "$@" 2>/dev/null || true; }

[ "$(id -u)" = 0 ] || die "must run as root (slurmd has to be root to start jobs as the submitting user)"
case "$GPUS" in ''|*[!0-9]*) die "SLURM_LOCAL_GPUS must be a number, got '$GPUS'";; esac
case "$CPUS_OVERRIDE" in *[!0-9]*) die "SLURM_LOCAL_CPUS must be a number, got '$CPUS_OVERRIDE'";; esac

# ---------------------------------------------------------------- 1. install
missing=0
for f in /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch /usr/bin/squeue /usr/bin/scontrol \
         /usr/bin/sinfo /usr/bin/scancel /usr/sbin/munged /usr/bin/munge; do
    [ -x "$f" ] || missing=1
done
if [ "$missing" = 1 ]; then
    command -v apt-get >/dev/null || die "slurm/munge not installed and apt-get not available"
    log "installing slurmctld slurmd slurm-client munge (apt, no recommends)"
    # keep apt's postinst from starting services (under systemd that would start munge/slurm units)
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt_log=$(mktemp /tmp/start-slurm-apt.XXXXXX.log)
    rc=0
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge; } >"$apt_log" 2>&1 || rc=$?
    [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    if [ "$rc" != 0 ]; then tail -n 30 "$apt_log" >&2; die "apt-get failed (rc=$rc)"; fi
    rm -f "$apt_log"
    log "installed in $(elapsed)s"
fi

# ---------------------------------------------------------------- 2. munge
id munge >/dev/null 2>&1 || die "user 'munge' missing (munge package broken?)"
install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
install -d -o munge -g munge -m 0711 /var/lib/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null ||
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0600 /etc/munge/munge.key
mkdir -p "$RUN" "$LOGDIR"

if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    if pid_alive "$RUN/munged.pid" munged; then
        log "munged already running (ours, pid $(cat "$RUN/munged.pid"))"
    else
        log "munged already running (not started by this script; will be left alone)"
    fi
else
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged || die "munged failed to start"
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null 2>&1 || die "munged started but munge/unmunge round-trip fails"
    cp /run/munge/munged.pid "$RUN/munged.pid"   # our record: stop-slurm.sh kills only this pid
fi

# ---------------------------------------------------------------- 3. config
NODE=$(hostname -s 2>/dev/null || uname -n)
NODE=${NODE%%.*}
[ -n "$NODE" ] || die "the host name is empty"
HW=$(slurmd -C 2>/dev/null | head -n1 || true)   # NodeName=x CPUs=2 Boards=1 SocketsPerBoard=1 ...
hw() { sed -n "s/.*[[:space:]]$1=\([0-9]*\).*/\1/p" <<<"$HW"; }
REALMEM=$(hw RealMemory); [ -n "$REALMEM" ] || REALMEM=$(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo)
MEM=$(( REALMEM * 9 / 10 ))                      # <= real memory, or the node gets drained "Low RealMemory"
GRESLINE=""
if [ "$GPUS" -gt 0 ]; then GRESLINE=" Gres=gpu:$GPUS"; fi
if [ -n "$CPUS_OVERRIDE" ] || [ -z "$(hw CPUs)" ]; then
    NODELINE="NodeName=$NODE NodeAddr=127.0.0.1 CPUs=${CPUS_OVERRIDE:-$(nproc)} RealMemory=$MEM$GRESLINE State=UNKNOWN"
    EXTRA="SlurmdParameters=config_overrides"
else
    NODELINE="NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$(hw CPUs) Boards=$(hw Boards) SocketsPerBoard=$(hw SocketsPerBoard) CoresPerSocket=$(hw CoresPerSocket) ThreadsPerCore=$(hw ThreadsPerCore) RealMemory=$MEM$GRESLINE State=UNKNOWN"
    EXTRA=""
fi
if [ "$GPUS" -gt 0 ]; then
    EXTRA="$EXTRA
GresTypes=gpu"
    # slurmd ignores a count-only gpu line (it then reports 0 GPUs and the node goes INVAL), and
    # wants character devices: clones of /dev/null (c 1 3) stand in for /dev/nvidia0..N-1.
    FAKEDEV=$BASE/fakedev
    mkdir -p "$FAKEDEV"
    for i in $(seq 0 $(( GPUS - 1 ))); do
        [ -c "$FAKEDEV/gpu$i" ] || { rm -f "$FAKEDEV/gpu$i"; mknod -m 0666 "$FAKEDEV/gpu$i" c 1 3; } ||
            die "mknod $FAKEDEV/gpu$i failed (SLURM_LOCAL_GPUS needs root and a filesystem that allows device nodes)"
    done
    NEWGRES="# generated by start-slurm.sh - fake GPUs: device files are clones of /dev/null
NodeName=$NODE Name=gpu File=$FAKEDEV/gpu[0-$(( GPUS - 1 ))]"
else
    NEWGRES=""
fi

NEWCONF=$(cat <<EOF
# generated by start-slurm.sh - single node, no cgroups, no systemd, no accounting
ClusterName=localcluster
SlurmctldHost=$NODE(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
StateSaveLocation=$CTLD_STATE
SlurmdSpoolDir=$SPOOL
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
InactiveLimit=0
KillWait=5
MinJobAge=300
Waittime=0
$EXTRA
$NODELINE
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
mkdir -p /etc/slurm
# gres.conf: ours (header line) is compared; someone else's is left alone and not compared
ours_gres() { [ -f "$GRESCONF" ] && grep -q '^# generated by start-slurm.sh' "$GRESCONF"; }
cur_gres() { if ours_gres; then strip_comments "$GRESCONF"; fi; }
if [ -n "$NEWGRES" ] && [ -f "$GRESCONF" ] && ! ours_gres; then
    die "$GRESCONF exists and was not written by this script; move it away to use SLURM_LOCAL_GPUS"
fi
if [ -f "$CONF" ] && [ "$(strip_comments "$CONF")" = "$(strip_comments <<<"$NEWCONF")" ] &&
   [ "$(cur_gres)" = "$(strip_comments <<<"$NEWGRES")" ]; then
    log "$CONF unchanged"
else
    if pid_alive "$RUN/slurmctld.pid" slurmctld || pid_alive "$RUN/slurmd.pid" slurmd; then
        log "$CONF changes; restarting our slurm daemons"
        SLURM_LOCAL_KEEP_MUNGE=1 SLURM_LOCAL_BASE=$BASE "$HERE/stop-slurm.sh" || die "stop-slurm.sh failed"
    fi
    [ -f "$CONF" ] && cp "$CONF" "$CONF.bak.$(date +%s)"
    printf '%s\n' "$NEWCONF" >"$CONF"
    if [ -n "$NEWGRES" ]; then
        printf '%s\n' "$NEWGRES" >"$GRESCONF"
    elif ours_gres; then
        rm -f "$GRESCONF"                           # ours from an earlier SLURM_LOCAL_GPUS run
    fi
    log "wrote $CONF"
fi

# ---------------------------------------------------------------- 4. daemons
if pid_alive "$RUN/slurmctld.pid" slurmctld; then
    log "slurmctld already running (pid $(cat "$RUN/slurmctld.pid"))"
elif port_busy 6817; then
    scontrol ping >/dev/null 2>&1 ||
        die "port 6817 is in use by something that does not answer 'scontrol ping' (another slurmctld? systemd unit?)"
    log "WARNING: a slurmctld not started by this script answers on 6817; using it as it is (config not re-read)"
else
    [ "$FRESH" = 1 ] && rm -rf "$CTLD_STATE"
    mkdir -p "$CTLD_STATE"
    log "starting slurmctld"
    slurmctld || die "slurmctld failed to start"
fi
for _ in $(seq $(( TIMEOUT * 5 ))); do scontrol ping >/dev/null 2>&1 && break; sleep 0.2; done
scontrol ping >/dev/null 2>&1 || die "slurmctld did not answer 'scontrol ping' within ${TIMEOUT}s"

if pid_alive "$RUN/slurmd.pid" slurmd; then
    log "slurmd already running (pid $(cat "$RUN/slurmd.pid"))"
elif port_busy 6818; then
    log "WARNING: a slurmd not started by this script listens on 6818; using it as it is"
else
    mkdir -p "$SPOOL"
    log "starting slurmd"
    slurmd -N "$NODE" || die "slurmd failed to start"
fi

# ---------------------------------------------------------------- 5. wait for idle
deadline=$(( $(date +%s) + TIMEOUT ))
state=""
while :; do
    state=$(sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -n1 || true)
    case "$state" in
        idle|mixed|allocated) break ;;
        *drain*|down*)           # leftover state from an earlier run: put it back in service
            scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    [ "$(date +%s)" -ge "$deadline" ] &&
        die "node $NODE not idle after ${TIMEOUT}s (state='${state}'; reason: $(sinfo -h -n "$NODE" -o '%E' 2>/dev/null))"
    sleep 0.2
done
log "node $NODE is $state after $(elapsed)s"

# ---------------------------------------------------------------- 6. smoke job
# slurmctld's first scheduling pass happens ~3s after it starts; jobs submitted before that stay
# PENDING (Reason=None). Running one trivial job end-to-end proves sbatch -> slurmd -> slurmstepd
# works and that the scheduler is live, so callers can expect prompt starts afterwards.
if [ "${SLURM_LOCAL_SMOKE:-1}" = 1 ]; then
    # shellcheck disable=SC2016  # $SLURM_JOB_ID is expanded inside the job, on purpose
    sj=$(sbatch --parsable --job-name=start-slurm-smoke --output=/dev/null --time=00:01:00 \
         --wrap 'test -n "$SLURM_JOB_ID"') || die "sbatch of smoke job failed"
    sj=${sj%%;*}
    deadline=$(( $(date +%s) + TIMEOUT ))
    while :; do
        st=$(squeue -h -t all -j "$sj" -o '%T' 2>/dev/null || true)
        [ "$st" = COMPLETED ] && break
        case "$st" in FAILED|CANCELLED|TIMEOUT|NODE_FAIL|BOOT_FAIL|OUT_OF_MEMORY)
            die "smoke job $sj ended $st: $(scontrol show job -o "$sj" 2>&1)";; esac
        [ "$(date +%s)" -ge "$deadline" ] &&
            die "smoke job $sj not COMPLETED after ${TIMEOUT}s (state=$st): $(scontrol show job -o "$sj" 2>&1)"
        sleep 0.2
    done
    log "smoke job $sj COMPLETED"
fi
log "cluster ready in $(elapsed)s"
sinfo
