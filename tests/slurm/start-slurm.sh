#!/usr/bin/env bash
# A one-node Slurm for tests, started without systemd in a directory of its own:
#
#   start-slurm.sh start DIR   munged (as user munge, its own key and socket), slurmctld -D
#                              and slurmd -D in the background, a generated slurm.conf;
#                              waits (bounded) until the node is idle. Writes DIR/env
#                              (`source` it: SLURM_CONF) and DIR/pids. Exit 0 when up;
#                              else 77 with "cannot start Slurm: WHY" (the caller skips).
#   start-slurm.sh stop DIR    ends those processes by their process ids.
#
# The node is this host (hostname -s) at 127.0.0.1 with 2 CPUs; no cgroups
# (proctrack/linuxproc, task/none), no accounting (squeue and scontrol, no sacct);
# random ports so that it does not meet another test's Slurm.
set -uo pipefail
cmd=${1:-} dir=${2:-}
[[ -n $cmd && -n $dir ]] || { echo "usage: start-slurm.sh start|stop DIR" >&2; exit 2; }

stop() {
  [[ -f $dir/pids ]] || return 0
  local p
  # The jobs first: their tasks live under slurmstepd, which outlives slurmd.
  if [[ -f $dir/slurm.conf ]]; then
    local ids
    ids=$(SLURM_CONF=$dir/slurm.conf timeout 10 /usr/bin/squeue -h -o %i 2>/dev/null)
    if [[ -n $ids ]]; then
      SLURM_CONF=$dir/slurm.conf timeout 10 /usr/bin/scancel $ids 2>/dev/null
      for _ in $(seq 50); do
        [[ -z $(SLURM_CONF=$dir/slurm.conf timeout 5 /usr/bin/squeue -h -o %i 2>/dev/null) ]] && break
        sleep 0.2
      done
    fi
  fi
  for p in $(cat "$dir/pids"); do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 50); do
    local alive=0
    for p in $(cat "$dir/pids"); do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for p in $(cat "$dir/pids"); do kill -KILL "$p" 2>/dev/null; done
  rm -f "$dir/pids"
  if [[ -f $dir/munge-dir ]]; then
    local m
    m=$(cat "$dir/munge-dir")
    [[ $m == /tmp/prelude-munge.* ]] && rm -rf "$m"
    rm -f "$dir/munge-dir"
  fi
}
if [[ $cmd == stop ]]; then stop; exit 0; fi
[[ $cmd == start ]] || { echo "usage: start-slurm.sh start|stop DIR" >&2; exit 2; }

cannot() { echo "cannot start Slurm: $*"; stop; exit 77; }
[[ $(id -u) -eq 0 ]] || cannot "it needs root (slurmd runs jobs as their users; munged as user munge)"
for p in /usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch /usr/bin/squeue /usr/bin/scontrol \
         /usr/sbin/mungekey; do
  [[ -x $p ]] || cannot "$p is missing (apt-get install slurmctld slurmd slurm-client munge)"
done
id munge > /dev/null 2>&1 || cannot "there is no user munge"

mkdir -p "$dir" && dir=$(cd "$dir" && pwd)
: > "$dir/pids"
# munged is strict about its files: its own directory, owned by munge, 0700; a 0400 key.
# Not under DIR, whose parents (a test's private mktemp directory) user munge may not
# enter: a directory of its own in /tmp, named in DIR/munge-dir and removed by stop.
m=$(mktemp -d /tmp/prelude-munge.XXXXXX) || cannot "mktemp failed"
echo "$m" > "$dir/munge-dir"
chown munge: "$m" && chmod 0700 "$m"
runuser -u munge -- /usr/sbin/mungekey --create --keyfile="$m/munge.key" > "$m/mungekey.log" 2>&1 ||
  cannot "mungekey failed: $(tail -1 "$m/mungekey.log")"
runuser -u munge -- /usr/sbin/munged --key-file="$m/munge.key" --socket="$m/munge.socket" --pid-file="$m/munged.pid" \
  --log-file="$m/munged.log" --seed-file="$m/munged.seed" --force > "$m/start.log" 2>&1 ||
  cannot "munged did not start: $(tail -1 "$m/start.log") $(tail -1 "$m/munged.log" 2>/dev/null)"
for _ in $(seq 50); do [[ -s $m/munged.pid ]] && break; sleep 0.1; done
[[ -s $m/munged.pid ]] || cannot "munged wrote no pid file"
cat "$m/munged.pid" >> "$dir/pids"
# The socket directory must be reachable by root's slurmctld/slurmd (it is: root).

node=$(hostname -s)
ctld_port=$((20000 + RANDOM % 20000)) slurmd_port=$((40001 + RANDOM % 20000))
mkdir -p "$dir/state" "$dir/spool"
cat > "$dir/slurm.conf" <<CONF
ClusterName=prelude-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$m/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
KillWait=2
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$node NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$dir/slurm.conf
echo "export SLURM_CONF=$dir/slurm.conf" > "$dir/env"

/usr/sbin/slurmctld -D -i > "$dir/slurmctld.out" 2>&1 &
echo $! >> "$dir/pids"
/usr/sbin/slurmd -D > "$dir/slurmd.out" 2>&1 &
echo $! >> "$dir/pids"
state=
for _ in $(seq 150); do  # at most 15 s
  state=$(/usr/bin/sinfo -h -n "$node" -o %T 2>/dev/null | head -1)
  [[ $state == idle ]] && break
  sleep 0.1
done
[[ $state == idle ]] ||
  cannot "the node is not idle after 15 s (state '${state:-none}'): $(tail -2 "$dir/slurmctld.log" "$dir/slurmd.log" 2>/dev/null | tr '\n' ' ')"
echo "slurm up: node $node, SLURM_CONF=$SLURM_CONF"
