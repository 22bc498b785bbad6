#!/usr/bin/env bash
# Exact resume under the service, on loopback: a coordinator with its local 2-rank
# pool trains one job while a rank of the pool is SIGKILLed three times. Each kill
# comes right after a checkpoint is kept; the pool is restarted, the job requeued,
# and every attempt resumes from the latest checkpoint. The job ends SUCCEEDED, each
# resume lost at most one checkpoint interval of steps, and its final test accuracy
# and loss equal those of the same job trained without interruption (2 ranks x 1
# thread, standalone under mpirun).
#
#   resume_e2e_test.sh COORDINATOR WORKER CLIENT
set -uo pipefail
COORD=$1 WORKER=$2 CLIENT=$3
PY=/usr/bin/python3
source "$(dirname "$0")/lib.sh"
fail_dump() { echo "--- coordinator log"; tail -60 "$work/coord.log"; }
if [[ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
  echo "skipped, because Fashion-MNIST is not installed"; exit 0
fi

# 12800 images: 200 steps of batch 64, a checkpoint every 20 steps.
cat > "$work/job.json" <<'JOB'
{ "name": "e2e-resume",
  "dataset": { "name": "fashion-mnist", "trainLimit": 12800, "testLimit": 2000 },
  "model": { "preset": "cnn-small", "activation": { "kind": "PRELU_CHANNELWISE" } },
  "training": { "epochs": 1, "batchSize": 64, "logEverySteps": 5, "checkpoint": { "everySteps": 20 } } }
JOB

setsid "$COORD" --listen 127.0.0.1:0 --port-file "$work/port" --db "$work/jobs.db" --spawn-workers 2 \
  --worker-threads 1 --heartbeat-timeout 2 --max-attempts 5 >> "$work/coord.log" 2>&1 &
coord_pid=$!; pids+=($coord_pid)
for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.1; done
[[ -s "$work/port" ]] || { echo "coordinator did not start"; fail_dump; exit 1; }
export PRELUDE_COORDINATOR=127.0.0.1:$(cat "$work/port")

latest_checkpoint() { job_json "$1" "max([int(c.get('step', 0)) for c in j.get('checkpoints', [])] or [0])"; }

id=$("$CLIENT" submit "$work/job.json")
check "submit prints a job id" [ -n "$id" ]
for kill_no in 1 2 3; do
  target=$((kill_no * 50))
  if ! wait_for 120 checkpoint_at_least "$id" "$target"; then
    echo "no checkpoint at step >= $target"; fail_dump; exit 1
  fi
  # A rank of the coordinator's pool (a child of its mpirun): the whole MPI job goes down.
  rank=$(pgrep -x prelude-worker -P "$(pgrep -d, -x mpirun -P "$coord_pid")" | tail -1)
  [[ -n $rank ]] || { echo "no rank to kill"; fail_dump; exit 1; }
  echo "kill $kill_no: rank pid $rank after the checkpoint of step $(latest_checkpoint "$id")"
  kill -KILL "$rank"
  if ! wait_for 90 attempt_running "$id" $((kill_no + 1)); then
    echo "the job was not started again after kill $kill_no"; fail_dump; exit 1
  fi
done
wait_for 180 state_is "$id" SUCCEEDED
check "the job ends SUCCEEDED after three kills" state_is "$id" SUCCEEDED
check "it took four attempts" [ "$(job_json "$id" "j.get('attempts')")" = 4 ]
check "its final model is kept" [ "$(job_json "$id" "sum(1 for c in j.get('checkpoints', []) if c.get('final'))")" = 1 ]

"$CLIENT" metrics "$id" --attempt all --format json > "$work/events.jsonl"
"$PY" - "$work/events.jsonl" > "$work/resumes.txt" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
last_step = 0
for e in events:
    if e.get("event") == "step":
        last_step = e["step"]
    if e.get("event") == "resumed":
        print(e["step"], last_step)
PY
cat "$work/resumes.txt"
check "each attempt after a kill resumed from a checkpoint (3 resumed events)" [ "$(grep -c . "$work/resumes.txt")" -eq 3 ]
check "each resumed at a checkpoint step, at most one interval (20 steps) behind the last step reported" \
  awk '{ if ($1 % 20 != 0 || $1 > $2 || $2 - $1 > 20) bad = 1 } END { exit bad }' "$work/resumes.txt"
check "the resumed steps grow" bash -c "sort -n -c '$work/resumes.txt'"

MPI=(mpirun --oversubscribe --bind-to none -np 2 -x OMP_NUM_THREADS=1)
[[ $(id -u) -eq 0 ]] && MPI=(mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 -x OMP_NUM_THREADS=1)
"${MPI[@]}" "$WORKER" run "$work/job.json" --threads 1 --quiet > "$work/straight.jsonl" 2> "$work/straight.err"
summary() { "$PY" -c "import json,sys; s=[json.loads(l) for l in open(sys.argv[1]) if '\"summary\"' in l][-1]; print(s['steps'], repr(s['test_accuracy']), repr(s['test_loss']))" "$1"; }
grep '"summary"' "$work/events.jsonl" > "$work/service-summary.jsonl"
echo "killed three times: $(summary "$work/service-summary.jsonl")   uninterrupted: $(summary "$work/straight.jsonl")"
check "the final test accuracy and loss equal an uninterrupted run's, bit for bit" \
  [ "$(summary "$work/service-summary.jsonl")" = "$(summary "$work/straight.jsonl")" ]

kill -TERM -- "-$coord_pid" 2>/dev/null
wait "$coord_pid" 2>/dev/null
echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]] || { fail_dump; exit 1; }
