#!/usr/bin/env bash
# A real Slurm on this machine for CI: slurmctld + two slurmd nodes (jj1, jj2) on 127.0.0.1, one
# fake GPU each (character devices, so gres sets CUDA_VISIBLE_DEVICES), munge for auth.
# Prints the SLURM_CONF to export.
#
# It trusts only a Slurm that is its own. Run again, it reuses the cluster in $D when its pid files
# name live slurmctld/slurmd processes started with this slurm.conf, and the controller that answers
# reports this slurm.conf, this folder's cluster name and the two nodes. Otherwise it stops what is
# left of its own daemons (by pid file) and starts afresh on ports it finds free, so another Slurm
# on this machine (on the default ports or any other) is never mistaken for this one.
# Stop it with: for f in "$D"/*.pid; do kill "$(cat "$f")"; done
set -euo pipefail
D=${JJ_SLURM_DIR:-/tmp/jj-slurm}
export DEBIAN_FRONTEND=noninteractive SLURM_CONF=$D/slurm.conf
NODES="jj1 jj2"
# One cluster name per folder: a controller of another folder's cluster does not pass for this one.
CLUSTER=jj$(printf %s "$D" | md5sum | cut -c1-8)
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

# ours NAME PROGRAM: the pid file $D/NAME.pid names a live PROGRAM started with this slurm.conf.
ours() {
    local pid command
    pid=$(cat "$D/$1.pid" 2>/dev/null) || return 1
    [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = "$2" ] || return 1
    command=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ "$command" == *"-f $SLURM_CONF "* ]]
}
daemons() { echo "slurmctld slurmctld"; for node in $NODES; do echo "slurmd-$node slurmd"; done; }
# setting NAME: the value the answering controller reports for NAME (scontrol show config).
setting() { timeout 5 scontrol show config 2>/dev/null | awk -v k="$1" '$1 == k {sub(/^[^=]*= */, ""); print; exit}'; }
# node_states: "jj1 idle jj2 idle" as the answering controller sees them.
node_states() { timeout 5 sinfo -h -N -o '%N %T' 2>/dev/null | sort | tr '\n' ' ' | sed 's/ $//'; }
# is_own [STATES]: every daemon is ours and the controller answering is ours, with both nodes in STATES.
is_own() {
    local states=${1:-idle|mixed|allocated|completing} name program
    while read -r name program; do ours "$name" "$program" || return 1; done < <(daemons)
    [ "$(setting SLURM_CONF)" = "$SLURM_CONF" ] && [ "$(setting ClusterName)" = "$CLUSTER" ] || return 1
    [[ "$(node_states)" =~ ^jj1\ ($states)\ jj2\ ($states)$ ]]
}

mkdir -p /run/munge && chown munge:munge /run/munge
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged

if [ -f "$SLURM_CONF" ] && is_own; then
    echo "$SLURM_CONF"
    exit 0
fi

# Start afresh: end what is left of our own daemons (never anyone else's), then choose free ports.
while read -r name program; do
    if ours "$name" "$program"; then
        pid=$(cat "$D/$name.pid")
        kill "$pid"
        for _ in $(seq 100); do [ -e "/proc/$pid" ] || break; sleep 0.1; done
    fi
    rm -f "$D/$name.pid"
done < <(daemons)
# A port is free when nothing holds it on 127.0.0.1 nor on every address (the daemons bind both).
read -r CTLD_PORT PORT1 PORT2 < <(python3 - <<'PY'
import socket

free = []
for port in range(6817, 7817):
    try:
        for host in ("127.0.0.1", ""):
            with socket.socket() as probe:
                probe.bind((host, port))
    except OSError:
        continue
    free.append(port)
    if len(free) == 3:
        break
print(*free)
PY
)
[ -n "${PORT2:-}" ] || { echo "no three free ports in 6817-7816 for Slurm" >&2; exit 1; }

rm -rf "$D/state"  # a previous cluster's state (another name, old jobs) is not this one's
mkdir -p "$D"/{state,spool,log}
chmod 755 "$D"
H=$(hostname -s)
for i in 0 1; do [ -e "$D/fakegpu$i" ] || mknod "$D/fakegpu$i" c 1 3; done
cat > "$D/slurm.conf" <<CONF
ClusterName=$CLUSTER
SlurmctldHost=$H(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool/%n
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd-%n.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=100
KillWait=5
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=3600
MailProg=/bin/true
ReturnToService=2
SchedulerParameters=sched_interval=1
GresTypes=gpu
NodeName=jj1 NodeHostname=$H NodeAddr=127.0.0.1 Port=$PORT1 CPUs=2 RealMemory=2000 Gres=gpu:fake:1 State=UNKNOWN
NodeName=jj2 NodeHostname=$H NodeAddr=127.0.0.1 Port=$PORT2 CPUs=2 RealMemory=2000 Gres=gpu:fake:1 State=UNKNOWN
PartitionName=debug Nodes=jj1,jj2 Default=YES MaxTime=INFINITE State=UP
CONF
cat > "$D/gres.conf" <<CONF
AutoDetect=off
NodeName=jj1 Name=gpu Type=fake File=$D/fakegpu0
NodeName=jj2 Name=gpu Type=fake File=$D/fakegpu1
CONF
/usr/sbin/slurmctld -f "$SLURM_CONF"
for node in $NODES; do
    /usr/sbin/slurmd -f "$SLURM_CONF" -N "$node"
done
for _ in $(seq 100); do
    is_own idle && break
    scontrol update nodename=jj1,jj2 state=resume >/dev/null 2>&1 || true
    sleep 0.2
done
if ! is_own idle; then
    tail -n 5 "$D"/log/*.log >&2
    echo "the Slurm of $D did not come up as its own (cluster $CLUSTER, controller port $CTLD_PORT):" \
         "controller says SLURM_CONF=$(setting SLURM_CONF) ClusterName=$(setting ClusterName); nodes: $(node_states)" >&2
    exit 1
fi
echo "$SLURM_CONF"
