#!/usr/bin/env bash
# Hung ranks under the service, on loopback (issue 12, item 2): a coordinator with its
# local 2-rank pool (--stall-timeout 8) while ranks are SIGSTOPped and never resumed.
#  1. rank 1 stopped mid-job: rank 0's stall watchdog finds itself waiting in a
#     collective, tells the coordinator, the pool ends and is respawned, and the job
#     resumes from its checkpoint and succeeds; the stopped rank does not outlive it.
#  2. rank 1 stopped, then the job cancelled: the cancel wins (CANCELLED), though the
#     pool cannot stop at a step.
#  3. rank 0 stopped (no more heartbeats): the coordinator requeues the job, rank 1's
#     watchdog ends the pool, a new pool finishes the job.
#  4, 5. rank 1, then rank 0, stopped while the pool is idle: the pool ends all the
#     same and a new one trains the next job.
#
#   stall_e2e_test.sh COORDINATOR WORKER CLIENT
set -uo pipefail
COORD=$1 WORKER=$2 CLIENT=$3
PY=/usr/bin/python3
source "$(dirname "$0")/lib.sh"
fail_dump() { echo "--- coordinator log"; tail -80 "$work/coord.log"; }
if [[ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
  echo "skipped, because Fashion-MNIST is not installed"; exit 0
fi

# 200 steps of batch 64, a checkpoint every 20.
cat > "$work/job.json" <<'JOB'
{ "name": "e2e-stall",
  "dataset": { "name": "fashion-mnist", "trainLimit": 12800, "testLimit": 1000 },
  "model": { "preset": "cnn-small", "activation": { "kind": "PRELU_CHANNELWISE" } },
  "training": { "epochs": 1, "batchSize": 64, "logEverySteps": 5, "checkpoint": { "everySteps": 20 } } }
JOB

setsid "$COORD" --listen 127.0.0.1:0 --port-file "$work/port" --db "$work/jobs.db" --spawn-workers 2 \
  --worker-threads 1 --heartbeat-timeout 3 --stall-timeout 8 --max-attempts 5 >> "$work/coord.log" 2>&1 &
coord_pid=$!; pids+=($coord_pid)
for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.1; done
[[ -s "$work/port" ]] || { echo "coordinator did not start"; fail_dump; exit 1; }
export PRELUDE_COORDINATOR=127.0.0.1:$(cat "$work/port")

# The pid of rank R of the coordinator's current pool (a child of its mpirun).
rank_pid() {
  local mp p
  mp=$(pgrep -d, -x mpirun -P "$coord_pid") || return 1
  for p in $(pgrep -x prelude-worker -P "$mp"); do
    if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then echo "$p"; return 0; fi
  done
  return 1
}
gone() { [[ ! -e /proc/$1 ]] || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# ---- 1. rank 1 stopped mid-job
id=$("$CLIENT" submit "$work/job.json")
check "submit prints a job id" [ -n "$id" ]
wait_for 120 checkpoint_at_least "$id" 40 || { echo "no checkpoint at step 40"; fail_dump; exit 1; }
r1=$(rank_pid 1) || { echo "no rank 1"; fail_dump; exit 1; }
t0=$(date +%s.%N)
kill -STOP "$r1"
echo "1: SIGSTOP rank 1 (pid $r1) of the pool running $id"
wait_for 60 attempt_running "$id" 2
t1=$(date +%s.%N)
check "1: the job is requeued and started again on a new pool" attempt_running "$id" 2
echo "1: from SIGSTOP to the job running again: $("$PY" -c "print(f'{$t1 - $t0:.1f} s')")"
check "1: the stopped rank did not outlive its pool" wait_for 20 gone "$r1"
wait_for 180 state_is "$id" SUCCEEDED
check "1: the job ends SUCCEEDED" state_is "$id" SUCCEEDED
"$CLIENT" watch "$id" > "$work/history1.txt" 2>&1
check "1: its history says the pool hung, rank 0 waiting in a collective" \
  grep -q "QUEUED.*hung (rank 0 waited .* in MPI_.* for the other ranks" "$work/history1.txt"
"$CLIENT" metrics "$id" --format json > "$work/events1.jsonl"
check "1: the second attempt resumed from a checkpoint (step >= 40)" \
  "$PY" -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if '\"resumed\"' in l]; sys.exit(0 if r and r[0]['step'] >= 40 else 1)" "$work/events1.jsonl"

# ---- 2. a cancel wins over a hung pool
id2=$("$CLIENT" submit "$work/job.json")
wait_for 120 checkpoint_at_least "$id2" 20 || { echo "no checkpoint at step 20"; fail_dump; exit 1; }
r1=$(rank_pid 1) || { echo "no rank 1"; fail_dump; exit 1; }
kill -STOP "$r1"
sleep 1
t0=$(date +%s.%N)
"$CLIENT" cancel "$id2" > /dev/null
echo "2: SIGSTOP rank 1 (pid $r1), then cancel $id2"
wait_for 60 state_is "$id2" CANCELLED
t1=$(date +%s.%N)
check "2: the cancelled job ends CANCELLED though its pool hung" state_is "$id2" CANCELLED
echo "2: from the cancel to CANCELLED: $("$PY" -c "print(f'{$t1 - $t0:.1f} s')")"
check "2: the stopped rank did not outlive its pool" wait_for 30 gone "$r1"

# ---- 3. rank 0 stopped: no heartbeats
id3=$("$CLIENT" submit "$work/job.json")
wait_for 120 checkpoint_at_least "$id3" 20 || { echo "no checkpoint at step 20"; fail_dump; exit 1; }
r0=$(rank_pid 0) || { echo "no rank 0"; fail_dump; exit 1; }
kill -STOP "$r0"
echo "3: SIGSTOP rank 0 (pid $r0) of the pool running $id3"
wait_for 90 attempt_running "$id3" 2
check "3: the job is requeued and started again on a new pool" attempt_running "$id3" 2
check "3: the stopped rank 0 did not outlive its pool" wait_for 30 gone "$r0"
wait_for 180 state_is "$id3" SUCCEEDED
check "3: the job ends SUCCEEDED" state_is "$id3" SUCCEEDED
"$CLIENT" watch "$id3" > "$work/history3.txt" 2>&1
check "3: its history says the pool stopped responding" grep -q "QUEUED.*stopped responding" "$work/history3.txt"

# ---- 4 and 5. a rank stopped while the pool is idle (no job to watch): rank 0 hands
# out a round's news (job or none) to the others at least every ~30 s, and that
# broadcast is watched too, so the pool still ends and is replaced.
pool_pid() { pgrep -d, -x mpirun -P "$coord_pid"; }
for r in 1 0; do
  n=$((r == 1 ? 4 : 5))
  wait_for 60 rank_pid "$r" > /dev/null || { echo "no rank $r"; fail_dump; exit 1; }
  sleep 2
  wait_for 60 bash -c "[ -n \"\$(pgrep -d, -x mpirun -P $coord_pid)\" ] && [ \"\$(pgrep -d, -x mpirun -P $coord_pid)\" != '${old_pool:-none}' ]" || true
  wait_for 60 rank_pid "$r" > /dev/null
  sleep 2
  old_pool=$(pool_pid); rp=$(rank_pid "$r")
  kill -STOP "$rp"
  echo "$n: SIGSTOP rank $r (pid $rp) of an idle pool"
  check "$n: the stopped rank $r of an idle pool does not outlive it" wait_for 90 gone "$rp"
  check "$n: a new pool replaces it" wait_for 30 bash -c "p=\$(pgrep -d, -x mpirun -P $coord_pid) && [ -n \"\$p\" ] && [ \"\$p\" != '$old_pool' ]"
done
id4=$("$CLIENT" submit "$work/job.json")
wait_for 180 state_is "$id4" SUCCEEDED
check "5: the new pool trains the next job" state_is "$id4" SUCCEEDED

kill -TERM -- "-$coord_pid" 2>/dev/null
wait "$coord_pid" 2>/dev/null
sleep 2
check "no process of the coordinator's group left behind" bash -c "! pgrep -g $coord_pid > /dev/null"
echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]] || { fail_dump; exit 1; }
