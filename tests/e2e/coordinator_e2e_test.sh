#!/usr/bin/env bash
# End to end on loopback: a coordinator with a token and a local 2-rank pool, the
# C++ and Python clients, cancel, bad input, a coordinator restart that keeps the
# history, and a pool killed mid-job whose job is requeued and finished by another.
#
#   coordinator_e2e_test.sh COORDINATOR WORKER CLIENT SOURCE_DIR
set -uo pipefail
COORD=$1 WORKER=$2 CLIENT=$3 SRC=$4
PY=/usr/bin/python3
source "$(dirname "$0")/lib.sh"
fail_dump() { echo "--- coordinator log"; tail -40 "$work/coord.log"; }

echo s3cret-token > "$work/token"
echo wrong > "$work/bad-token"
# Small jobs: 2048 training images, one epoch of 32 steps at batch 64.
cat > "$work/quick.json" <<'JOB'
{ "name": "e2e-quick",
  "dataset": { "name": "fashion-mnist", "trainLimit": 2048, "testLimit": 1000 },
  "training": { "epochs": 1, "batchSize": 64, "logEverySteps": 8 } }
JOB
# A job long enough to cancel or to lose its pool: 20 epochs of 2048 images.
cat > "$work/long.json" <<'JOB'
{ "name": "e2e-long",
  "dataset": { "name": "fashion-mnist", "trainLimit": 2048, "testLimit": 256 },
  "training": { "epochs": 20, "batchSize": 64, "logEverySteps": 4 } }
JOB

start_coordinator() {  # extra flags...
  rm -f "$work/port"
  setsid "$COORD" --listen 127.0.0.1:0 --port-file "$work/port" --db "$work/jobs.db" \
    --token-file "$work/token" "$@" >> "$work/coord.log" 2>&1 &
  pids+=($!)
  coord_pid=$!
  for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.1; done
  [[ -s "$work/port" ]] || { echo "coordinator did not start"; fail_dump; exit 1; }
  export PRELUDE_COORDINATOR=127.0.0.1:$(cat "$work/port")
}
stop_coordinator() {
  kill -TERM -- "-$coord_pid" 2>/dev/null
  wait "$coord_pid" 2>/dev/null
}
cli() { "$CLIENT" --token-file "$work/token" "$@"; }
# The value of a field of `prelude get ID --format json`, e.g. field job-1 state.
field() { cli get "$1" --format json | "$PY" -c "import json,sys; print(json.load(sys.stdin).get('$2', ''))"; }
wait_state() {  # wait_state ID STATE SECONDS
  for _ in $(seq $(($3 * 5))); do [[ "$(field "$1" state)" == "$2" ]] && return 0; sleep 0.2; done
  echo "job $1 did not reach $2 (now $(field "$1" state))"; return 1
}

# ---- a coordinator with a local pool of 2 ranks
start_coordinator --spawn-workers 2
echo "coordinator at $PRELUDE_COORDINATOR"

# A second coordinator on the same database is refused at once, naming the first.
timeout 10 "$COORD" --listen 127.0.0.1:0 --db "$work/jobs.db" > "$work/second.log" 2>&1; rc=$?
check "a second coordinator on the same database exits 2" [ "$rc" -eq 2 ]
check "and names the database and the holder" \
  grep -q "jobs.db: in use by another coordinator (pid $coord_pid on" "$work/second.log"

id=$(cli submit "$work/quick.json")
check "submit prints a job id" [ -n "$id" ]
cli watch "$id" > "$work/watch.txt"; rc=$?
check "watch ends with exit 0 for a job that succeeded" [ "$rc" -eq 0 ]
check "watch shows the final state" grep -q SUCCEEDED "$work/watch.txt"
check "the job ran on 2 ranks" [ "$(field "$id" ranks)" = 2 ]
cli metrics "$id" --format csv > "$work/metrics.csv"
check "metrics csv has a header and a row per step/epoch/summary (4 + 1 + 1)" \
  [ "$(grep -c . "$work/metrics.csv")" -eq 7 ]
acc=$(cli metrics "$id" --format json | "$PY" -c "
import json,sys
ev=[json.loads(l) for l in sys.stdin if l.strip()]
s=[e for e in ev if e.get('event')=='summary'][0]
print(s['test_accuracy'])")
check "the job learned: test accuracy $acc > 0.6 after 32 steps" "$PY" -c "import sys; sys.exit(0 if $acc > 0.6 else 1)"

# Its worker output: rank 0's lines, as the pool wrote them (`prelude logs`).
cli logs "$id" > "$work/logs.txt" 2> "$work/logs.err"; rc=$?
check "logs: exit 0, stderr names attempt 1" bash -c "[ $rc -eq 0 ] && grep -q 'attempt 1' '$work/logs.err'"
check "logs: the pool's line for the job's start, from rank 0" \
  grep -qE "^[0-9T:.-]+Z rank 0  job $id \(.*\): attempt 1$" "$work/logs.txt"
check "logs: training progress lines (an epoch's)" grep -q "rank 0  $id: .*epoch" "$work/logs.txt"

# The same API from Python (grpcio), and the standard health service.
"$PY" "$SRC/examples/python/prelude_client.py" --token-file "$work/token" submit "$work/quick.json" --watch \
  > "$work/py.txt" 2>&1; rc=$?
check "python client: submit --watch succeeds" [ "$rc" -eq 0 ]
check "python client: saw the summary" grep -q '"summary"' "$work/py.txt"
pyjob=$("$PY" -c "import json,sys; print(json.loads(open(sys.argv[1]).readline())['job_id'])" "$work/py.txt")
"$PY" "$SRC/examples/python/prelude_client.py" --token-file "$work/token" metrics "$pyjob" > "$work/py-metrics.txt" 2>&1
rc=$?
check "python client: metrics follows the pages to the summary, of attempt 1" \
  bash -c "[ $rc -eq 0 ] && grep -q '\"summary\"' '$work/py-metrics.txt' && grep -q '\"attempt\": 1' '$work/py-metrics.txt'"
check "health service answers SERVING" bash -c "'$PY' '$SRC/examples/python/prelude_client.py' health | grep -q SERVING"

# Errors a client can cause.
"$CLIENT" --token-file "$work/bad-token" list > /dev/null 2> "$work/err.txt"; rc=$?
check "a wrong token: exit 3, UNAUTHENTICATED" bash -c "[ $rc -eq 3 ] && grep -q UNAUTHENTICATED '$work/err.txt'"
"$CLIENT" list > /dev/null 2> "$work/err.txt"; rc=$?
check "no token: exit 3, UNAUTHENTICATED" bash -c "[ $rc -eq 3 ] && grep -q UNAUTHENTICATED '$work/err.txt'"
echo '{"training": {"learningRate": -1}}' > "$work/bad.json"
cli submit "$work/bad.json" > /dev/null 2> "$work/err.txt"; rc=$?
check "a bad spec: exit 3, INVALID_ARGUMENT naming training.learningRate" \
  bash -c "[ $rc -eq 3 ] && grep -q INVALID_ARGUMENT '$work/err.txt' && grep -q training.learningRate '$work/err.txt'"
echo '{"training": {"batchSize": 63}}' > "$work/odd.json"
cli submit "$work/odd.json" > /dev/null 2> "$work/err.txt"; rc=$?
check "a batch the 2-rank pool cannot split: INVALID_ARGUMENT naming batchSize" \
  bash -c "[ $rc -eq 3 ] && grep -q batchSize '$work/err.txt'"
echo '{"dataset": {"trainImages": "../../etc/passwd", "trainLabels": "x", "testImages": "x", "testLabels": "x"}}' > "$work/escape.json"
cli submit "$work/escape.json" > /dev/null 2> "$work/err.txt"; rc=$?
check "a path escaping the data root: INVALID_ARGUMENT" bash -c "[ $rc -eq 3 ] && grep -q dataset.trainImages '$work/err.txt'"
cli get job-999999 > /dev/null 2> "$work/err.txt"; rc=$?
check "an unknown id: exit 3, NOT_FOUND" bash -c "[ $rc -eq 3 ] && grep -q NOT_FOUND '$work/err.txt'"

# Cancel a running job: it stops at its next step.
long=$(cli submit "$work/long.json")
wait_state "$long" RUNNING 60
sleep 2
cli cancel "$long" > /dev/null
cli watch "$long" > "$work/watch-cancel.txt"; rc=$?
check "cancel: watch exits 4" [ "$rc" -eq 4 ]
check "cancel: the job is CANCELLED" [ "$(field "$long" state)" = CANCELLED ]
steps=$(field "$long" progress | "$PY" -c "import sys,ast; print(ast.literal_eval(sys.stdin.read() or '{}').get('step', 0))")
check "cancel: stopped early (step $steps of 640)" [ "${steps:-640}" -lt 640 ]
timeout 30 "$CLIENT" --token-file "$work/token" logs "$long" --follow > "$work/logs-cancel.txt" 2>&1; rc=$?
check "logs --follow of an ended job prints its lines and returns" \
  bash -c "[ $rc -eq 0 ] && grep -q 'rank 0  job $long' '$work/logs-cancel.txt'"

# ---- restart: the history survives
events_before=$(cli metrics "$id" --format json | grep -c .)
stop_coordinator
start_coordinator --spawn-workers 2
check "restart: the first job is still SUCCEEDED" [ "$(field "$id" state)" = SUCCEEDED ]
check "restart: its metrics are all there ($events_before events)" \
  [ "$(cli metrics "$id" --format json | grep -c .)" -eq "$events_before" ]
check "restart: its worker output is all there" cmp -s <(cli logs "$id" 2>/dev/null) "$work/logs.txt"
check "restart: list shows the 3 accepted jobs" [ "$(cli list | grep -c '^job-')" -eq 3 ]

# ---- a sweep: one job per grid point, compared side by side
cat > "$work/sweep.json" <<'JOB'
{ "name": "e2e-sweep",
  "base": { "dataset": { "name": "fashion-mnist", "trainLimit": 1024, "testLimit": 256 },
            "training": { "batchSize": 64, "maxSteps": 12, "logEverySteps": 4 } },
  "grid": [ { "field": "model.activation.kind", "values": ["RELU", "PRELU_CHANNELWISE"] } ] }
JOB
sweep=$(cli sweep "$work/sweep.json" 2> /dev/null)
check "sweep prints a sweep id" [ "${sweep#sweep-}" != "$sweep" ]
cli sweep "$work/sweep.json" --watch > "$work/sweep-watch.txt" 2>&1; rc=$?
check "sweep --watch follows a second sweep to its end: exit 0, each job's SUCCEEDED line" \
  bash -c "[ $rc -eq 0 ] && [ \$(grep -c '^job-.*  SUCCEEDED  model.activation.kind=' '$work/sweep-watch.txt') -eq 2 ] &&
           grep -q '2 of 2 jobs succeeded' '$work/sweep-watch.txt'"
cli watch "$sweep" > "$work/watch-sweep.txt" 2>&1; rc=$?
check "watch SWEEP_ID of an ended sweep: exit 0 and the summary" \
  bash -c "[ $rc -eq 0 ] && grep -q '^$sweep: 2 of 2 jobs succeeded' '$work/watch-sweep.txt'"
cli get "$sweep" > "$work/get-sweep.txt" 2>&1
check "get SWEEP_ID: the counts and both grid points" \
  bash -c "grep -q '2 jobs: 2 succeeded' '$work/get-sweep.txt' &&
           grep -q 'model.activation.kind=PRELU_CHANNELWISE' '$work/get-sweep.txt'"
# A sweep of long jobs, cancelled whole: the running one stops, the queued ones never start.
"$PY" - "$work/long.json" > "$work/long-sweep.json" <<'PYEOF'
import json, sys
print(json.dumps({"name": "e2e-cancel", "base": json.load(open(sys.argv[1])), "seeds": [1, 2, 3]}))
PYEOF
long_sweep=$(cli sweep "$work/long-sweep.json" 2> /dev/null)
wait_state "$(cli list --sweep "$long_sweep" | awk '/^job-/ {id=$1} END {print id}')" RUNNING 60
cli cancel "$long_sweep" > "$work/cancel-sweep.txt" 2>&1; rc=$?
check "cancel SWEEP_ID: exit 0, one job stopping, two cancelled" \
  bash -c "[ $rc -eq 0 ] && grep -q '2 cancelled, 1 stopping' '$work/cancel-sweep.txt'"
cli watch "$long_sweep" > "$work/watch-cancelled.txt" 2>&1; rc=$?
check "watch a cancelled sweep: exit 4, all three jobs CANCELLED" \
  bash -c "[ $rc -eq 4 ] && [ \$(grep -c '  CANCELLED  ' '$work/watch-cancelled.txt') -eq 3 ]"
echo '{"grid": [{"field": "model.activation.kind", "values": ["RELUX"]}]}' > "$work/bad-sweep.json"
cli sweep "$work/bad-sweep.json" > /dev/null 2> "$work/err.txt"; rc=$?
check "a bad sweep: exit 3, INVALID_ARGUMENT naming the grid value" \
  bash -c "[ $rc -eq 3 ] && grep -q 'sweep.grid\[0\].values\[0\]' '$work/err.txt'"
stop_coordinator

# ---- a pool killed mid-job: requeued, then finished by another pool
start_coordinator --heartbeat-timeout 2 --max-attempts 3
MPI=(mpirun --oversubscribe --bind-to none -np 2 -x OMP_NUM_THREADS=1)
[[ $(id -u) -eq 0 ]] && MPI=(mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 -x OMP_NUM_THREADS=1)
setsid "${MPI[@]}" "$WORKER" serve --token-file "$work/token" --quiet >> "$work/pool1.log" 2>&1 &
pool1=$!; pids+=($pool1)
job=$(cli submit "$work/long.json")
wait_state "$job" RUNNING 60
sleep 2
kill -KILL -- "-$pool1"
wait_state "$job" QUEUED 20
check "a killed pool's job is requeued" [ "$(field "$job" state)" = QUEUED ]
cli watch "$job" > "$work/watch-requeue.txt" &
watcher=$!
# A second pool takes it over; cancel it once it has started again (it is long).
setsid "${MPI[@]}" "$WORKER" serve --token-file "$work/token" --quiet >> "$work/pool2.log" 2>&1 &
pids+=($!)
wait_state "$job" RUNNING 60
check "the second pool runs it as attempt 2" [ "$(field "$job" attempts)" = 2 ]
cli cancel "$job" > /dev/null
wait_state "$job" CANCELLED 60
wait "$watcher"
check "a watcher that joined late saw the whole history: both starts" \
  [ "$(grep -c ' RUNNING started on' "$work/watch-requeue.txt")" -eq 2 ]
check "the requeue says why" grep -q "QUEUED pool .* stopped responding" "$work/watch-requeue.txt"
stop_coordinator

# ---- a spawned pool dies with its coordinator, even one killed by SIGKILL
start_coordinator --spawn-workers 2
# mpirun starts its ranks a moment after it starts: wait for all of them.
mpirun_pid="" ranks=""
for _ in $(seq 150); do
  mpirun_pid=$(pgrep -x mpirun -P "$coord_pid")
  [[ -n $mpirun_pid ]] && ranks=$(pgrep -d' ' -x prelude-worker -P "$mpirun_pid")
  [[ $(echo $ranks | wc -w) -eq 2 ]] && break
  sleep 0.1
done
check "the coordinator spawned its pool (mpirun and 2 ranks)" [ -n "$mpirun_pid" -a "$(echo $ranks | wc -w)" -eq 2 ]
kill -KILL "$coord_pid"
gone() { for p in $mpirun_pid $ranks; do kill -0 "$p" 2>/dev/null && return 1; done; return 0; }
for _ in $(seq 100); do gone && break; sleep 0.1; done
check "after kill -9 of the coordinator, its mpirun and ranks are gone within 10 s" gone

echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]] || { fail_dump; exit 1; }
