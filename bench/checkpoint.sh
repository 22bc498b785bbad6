#!/usr/bin/env bash
# Checkpoint figures for cnn-small (issue 11), on this machine:
#  1. standalone (1 process x 2 threads, one epoch of Fashion-MNIST): checkpoint
#     size, time to build, encode and write one (atomically, fsync'ed), and their
#     share of training time at the default interval (each epoch's end) and with a
#     checkpoint every 100 steps;
#  2. under the service (a local pool of 2 ranks x 1 thread): time the training
#     thread spends encoding a checkpoint, time to upload it, and the time from a
#     rank's SIGKILL to the first step after the resume, split into detection (the
#     heartbeat timeout, then the requeue to the restarted pool) and resume (fetch,
#     load data, rebuild, first steps).
# Usage: bench/checkpoint.sh [BUILD_DIR] [HEARTBEAT_TIMEOUT_S]   (from the repository root)
set -euo pipefail
build="${1:-build}" heartbeat="${2:-15}"
worker="$build/worker/prelude-worker" coord="$build/server/prelude-coordinator" client="$build/client/prelude"
py=/usr/bin/python3
tmp=$(mktemp -d)
coord_pid=""
trap '[[ -n $coord_pid ]] && kill -TERM -- "-$coord_pid" 2>/dev/null; sleep 1; rm -rf "$tmp"' EXIT

job() {  # job FILE EVERY_STEPS LOG_EVERY_STEPS
  cat > "$1" <<JSON
{ "name": "ckpt-bench", "dataset": { "name": "fashion-mnist" },
  "model": { "preset": "cnn-small", "activation": { "kind": "PRELU_CHANNELWISE" } },
  "training": { "epochs": 1, "batchSize": 64, "logEverySteps": $3, "checkpoint": { "everySteps": $2 } } }
JSON
}
job "$tmp/epoch.json" 0 50
job "$tmp/every100.json" 100 50
job "$tmp/service.json" 100 1  # a step event per step: the first step after resuming shows at once

echo "== 1. standalone, 1 process x 2 threads, cnn-small, one epoch (937 steps)"
for name in epoch every100; do
  "$worker" run "$tmp/$name.json" --threads 2 --checkpoint-dir "$tmp/ckpt-$name" > "$tmp/$name.out" 2> "$tmp/$name.err"
  $py - "$tmp/$name.out" "$tmp/$name.err" "$name" <<'PY'
import json, re, sys
summary = [json.loads(l) for l in open(sys.argv[1]) if '"summary"' in l][0]
ck = [(int(k), int(ms)) for k, ms in re.findall(r"checkpoint \S+ \((\d+) KiB, (\d+) ms\)", open(sys.argv[2]).read())]
total_ms = sum(ms for _, ms in ck)
print(f"  {sys.argv[3]:9} {len(ck)} checkpoints of {ck[0][0] / 1024:.2f} MiB, {total_ms / len(ck):.0f} ms each "
      f"(min {min(ms for _, ms in ck)}, max {max(ms for _, ms in ck)}); training {summary['seconds']:.1f} s: "
      f"checkpoints take {total_ms / 1000 / summary['seconds']:.2%} of it")
PY
done

echo "== 2. under the service, a local pool of 2 ranks x 1 thread, heartbeat timeout ${heartbeat} s"
setsid "$coord" --listen 127.0.0.1:0 --port-file "$tmp/port" --db "$tmp/jobs.db" --spawn-workers 2 \
  --worker-threads 1 --heartbeat-timeout "$heartbeat" > "$tmp/coord.log" 2>&1 &
coord_pid=$!
for _ in $(seq 100); do [[ -s "$tmp/port" ]] && break; sleep 0.1; done
export PRELUDE_COORDINATOR=127.0.0.1:$(cat "$tmp/port")
get() { "$client" get "$1" --format json | $py -c "import json,sys; j=json.load(sys.stdin); print($2)"; }
id=$("$client" submit "$tmp/service.json")
until [[ $(get "$id" "max([int(c.get('step', 0)) for c in j.get('checkpoints', [])] or [0])") -ge 300 ]]; do sleep 0.1; done
t_kill=$(date +%s.%N)
kill -KILL "$(pgrep -x prelude-worker -P "$(pgrep -d, -x mpirun -P "$coord_pid")" | tail -1)"
# The job stays RUNNING on the dead pool until the heartbeat timeout, then is requeued
# and taken at once by the restarted pool: watch for its second attempt.
until [[ $(get "$id" "j['state'] + str(j.get('attempts'))") == RUNNING2 ]]; do sleep 0.05; done
t_running=$(date +%s.%N)
resumed=$(get "$id" "max([int(c.get('step', 0)) for c in j.get('checkpoints', []) if not c.get('final')])")
until [[ $(get "$id" "int(j.get('progress', {}).get('step', 0)) > $resumed") == True ]]; do sleep 0.05; done
t_step=$(date +%s.%N)
"$client" watch "$id" > /dev/null || true
$py - "$tmp/coord.log" "$t_kill" "$t_running" "$t_step" "$resumed" "$heartbeat" <<'PY'
import re, sys
log = open(sys.argv[1]).read()
kept = [(int(e), int(u)) for e, u in re.findall(r"kept checkpoint of step \d+ \(\d+ KiB\): encoded in (\d+) ms, uploaded in (\d+) ms", log)]
print(f"  {len(kept)} checkpoints kept: the training thread spent {sum(e for e, _ in kept) / len(kept):.0f} ms on each "
      f"(encoding it); uploading took {sum(u for _, u in kept) / len(kept):.0f} ms each, in the uploader thread")
k, r, s = map(float, sys.argv[2:5])
print(f"  from a rank's SIGKILL to the first step after resuming (from step {sys.argv[5]}): {s - k:.1f} s = "
      f"{r - k:.1f} s until the job was running again (the heartbeat timeout, {sys.argv[6]} s, then requeue; the "
      f"pool was restarted meanwhile) + {s - r:.1f} s to fetch the checkpoint, load the data, rebuild and report "
      f"the first step")
PY
