#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for trying a run's job array
# and for the scale-out tests (Debian 12: slurm-wlm 22.05, munge).
#
#   scripts/slurm_local.sh start    # munged + slurmctld + slurmd; prints the
#                                   # `export SLURM_CONF=...` line to use
#   scripts/slurm_local.sh status   # sinfo
#   scripts/slurm_local.sh stop     # stops the daemons this script started
#
# Everything lives under $MMIA_SLURM_DIR (default /tmp/mmia-slurm): the
# configuration (SLURM_CONF points at it; /etc/slurm is not touched), state,
# spool, logs and pid files. Needs root (slurmd runs jobs as their users)
# and the packages slurm-wlm and munge (apt-get install slurm-wlm munge).
#
# The configuration is the minimal one that works in a container without
# systemd or a writable cgroup tree (../shared/notes/defences.md 4.2):
# proctrack/linuxproc, task/none, CgroupPlugin=cgroup/v1 (22.05's v1 init only
# allocates lists), select/cons_tres with CR_Core so array tasks share the node
# core by core, no accounting. Exit status: 0 when the node is idle and
# accepts jobs; 1 with one `error:` line otherwise (the caller skips).
set -u
DIR=${MMIA_SLURM_DIR:-/tmp/mmia-slurm}
CONF=$DIR/slurm.conf
die() { echo "error: slurm_local: $*" >&2; exit 1; }

start() {
    [ "$(id -u)" = 0 ] || die "needs root (slurmd starts jobs as their users)"
    for b in munged slurmctld slurmd sinfo sbatch; do
        command -v "$b" >/dev/null || die "$b not found: install slurm-wlm and munge (apt-get install slurm-wlm munge)"
    done
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" || die "cannot create $DIR"
    local host node
    host=$(hostname -s)
    # slurmd -C prints this node's NodeName line (CPUs, sockets, memory).
    node=$(slurmd -C 2>/dev/null | head -1)
    [ -n "$node" ] || die "slurmd -C printed nothing"
    cat > "$CONF" <<EOF
ClusterName=mmia
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=1
MinJobAge=600
$node
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    echo "CgroupPlugin=cgroup/v1" > "$DIR/cgroup.conf"
    export SLURM_CONF=$CONF
    # munged: the package creates the key (mode 0400, owner munge); it refuses
    # insecure permissions, so they are set, not assumed.
    if ! pgrep -x munged >/dev/null; then
        [ -f /etc/munge/munge.key ] || mungekey --create >/dev/null 2>&1 || die "no munge key and mungekey failed"
        mkdir -p /run/munge /var/log/munge /var/lib/munge
        chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge 2>/dev/null
        chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key; chmod 0755 /run/munge
        runuser -u munge -- munged >"$DIR/log/munged.out" 2>&1 || die "munged did not start (see $DIR/log/munged.out)"
    fi
    pgrep -f "slurmctld -f $CONF" >/dev/null || slurmctld -f "$CONF" -i >"$DIR/log/slurmctld.out" 2>&1 ||
        die "slurmctld did not start (see $DIR/log/slurmctld.log)"
    pgrep -f "slurmd -f $CONF" >/dev/null || slurmd -f "$CONF" >"$DIR/log/slurmd.out" 2>&1 ||
        die "slurmd did not start (see $DIR/log/slurmd.log)"
    for _ in $(seq 1 60); do
        if sinfo -h -o %t 2>/dev/null | grep -qx idle; then
            echo "export SLURM_CONF=$CONF"
            return 0
        fi
        sleep 0.5
    done
    die "the node did not become idle in 30 s (sinfo: $(sinfo -h -o %t 2>&1 | head -1); see $DIR/log/)"
}

stop() {
    for f in "$DIR/slurmd.pid" "$DIR/slurmctld.pid"; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
    done
    return 0
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) SLURM_CONF=$CONF sinfo ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
