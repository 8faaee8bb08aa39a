#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests/test_slurm.py (`vcpred experiment --executor slurm`
# run as real SLURM jobs). Needs root and Debian's slurm-wlm and munge (.ci/run installs them).
#
# Starts munged, slurmctld and slurmd with a one-node slurm.conf written to /etc/slurm/slurm.conf
# (only when there is none, or it is one this script wrote: an existing cluster's file is never
# replaced), then waits until the node is idle. Idempotent: a cluster that is already up is left as
# it is. Exits 0 when `sinfo` shows an idle node, non-zero (with a message) otherwise; the SLURM
# tests then skip with the reason.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# written by vcpred .ci/start_slurm.sh"
LOG=/var/log/vcpred-slurm
say() { echo "start_slurm: $*"; }

if [ "$(id -u)" != 0 ]; then say "needs root (to start munged, slurmctld and slurmd)"; exit 1; fi
for tool in munged slurmctld slurmd sbatch sinfo scontrol; do
  command -v "$tool" >/dev/null 2>&1 || { say "$tool not found: apt-get install slurm-wlm munge"; exit 1; }
done

if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then say "a SLURM cluster is already up"; exit 0; fi

mkdir -p "$LOG" /run/munge /var/spool/slurmctld /var/spool/slurmd /run/slurm
chown munge:munge /run/munge
chmod 0755 /run/munge

# munge: the key Debian's package made (or a new one), and the daemon as the munge user.
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
fi
if ! munge -n </dev/null >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged --force >"$LOG/munged.out" 2>&1 || { say "munged failed: $(cat "$LOG/munged.out")"; exit 1; }
  sleep 1
fi
munge -n </dev/null | unmunge >/dev/null 2>&1 || { say "munge does not work (munge -n | unmunge)"; exit 1; }

# slurm.conf for this one node (its CPUs and memory as slurmd sees them).
if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  say "$CONF exists and was not written by this script: using it as it is"
else
  host=$(hostname -s)
  node=$(slurmd -C | head -n 1 | sed -E 's/ UpTime=.*//')
  node=${node/NodeName=$host/NodeName=$host NodeAddr=127.0.0.1}
  cat >"$CONF" <<EOF
$MARK (a one-node test cluster)
ClusterName=vcpred-ci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
# finished jobs stay visible in scontrol for an hour (the SLURM tests read their state there)
MinJobAge=3600
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  say "wrote $CONF: $node"
fi

pgrep -x slurmctld >/dev/null || slurmctld || { say "slurmctld failed; see $LOG/slurmctld.log"; exit 1; }
pgrep -x slurmd >/dev/null || slurmd || { say "slurmd failed; see $LOG/slurmd.log"; exit 1; }

for _ in $(seq 1 30); do
  state=$(sinfo -h -o %t 2>/dev/null | head -n 1 || true)
  case "$state" in
    idle|mix|alloc) say "cluster up (node $state)"; exit 0 ;;
    down*|drain*|drng*) scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true ;;
  esac
  sleep 1
done
say "the node did not become idle (sinfo: ${state:-no answer}); see $LOG/"
exit 1
