#!/usr/bin/env bash
# A real Slurm on this machine for CI: slurmctld + two slurmd nodes (jj1, jj2) on 127.0.0.1, one
# fake GPU each (character devices, so gres sets CUDA_VISIBLE_DEVICES), munge for auth.
# Prints the SLURM_CONF to export. Daemons are stopped by their pid files in $D.
set -euo pipefail
D=${JJ_SLURM_DIR:-/tmp/jj-slurm}
export DEBIAN_FRONTEND=noninteractive SLURM_CONF=$D/slurm.conf
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi
mkdir -p "$D"/{state,spool,log}
chmod 755 "$D"
H=$(hostname -s)
for i in 0 1; do [ -e "$D/fakegpu$i" ] || mknod "$D/fakegpu$i" c 1 3; done
cat > "$D/slurm.conf" <<CONF
ClusterName=jjci
SlurmctldHost=$H(127.0.0.1)
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
NodeName=jj1 NodeHostname=$H NodeAddr=127.0.0.1 Port=6818 CPUs=2 RealMemory=2000 Gres=gpu:fake:1 State=UNKNOWN
NodeName=jj2 NodeHostname=$H NodeAddr=127.0.0.1 Port=6819 CPUs=2 RealMemory=2000 Gres=gpu:fake:1 State=UNKNOWN
PartitionName=debug Nodes=jj1,jj2 Default=YES MaxTime=INFINITE State=UP
CONF
cat > "$D/gres.conf" <<CONF
AutoDetect=off
NodeName=jj1 Name=gpu Type=fake File=$D/fakegpu0
NodeName=jj2 Name=gpu Type=fake File=$D/fakegpu1
CONF
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
mkdir -p /run/munge && chown munge:munge /run/munge
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
alive "$D/slurmctld.pid" || /usr/sbin/slurmctld -f "$SLURM_CONF"
for node in jj1 jj2; do
    alive "$D/slurmd-$node.pid" || /usr/sbin/slurmd -f "$SLURM_CONF" -N "$node"
done
for _ in $(seq 100); do
    [ "$(timeout 2 sinfo -h -o %T 2>/dev/null | sort -u | tr -d '\n')" = idle ] && break
    scontrol update nodename=jj1,jj2 state=resume >/dev/null 2>&1 || true
    sleep 0.2
done
[ "$(timeout 2 sinfo -h -o %T 2>/dev/null | sort -u | tr -d '\n')" = idle ] || { tail -n 5 "$D"/log/*.log >&2; echo "slurm did not come up" >&2; exit 1; }
echo "$SLURM_CONF"
