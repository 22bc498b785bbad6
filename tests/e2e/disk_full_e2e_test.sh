#!/usr/bin/env bash
# A real full disk under the coordinator: its database and checkpoints on a small
# tmpfs, filled while a job runs on its local 2-rank pool. While writes fail the
# coordinator says so (health NOT_SERVING, a submit refused UNAVAILABLE with the
# reason); once the space is freed it serves again by itself, the job ends SUCCEEDED
# (requeued at most within its attempts), nothing is left RUNNING, and SQLite's
# integrity check passes. Needs root's right to mount a tmpfs: skipped without it.
#
#   disk_full_e2e_test.sh COORDINATOR CLIENT SOURCE_DIR
set -uo pipefail
COORD=$1 CLIENT=$2 SRC=$3
PY=/usr/bin/python3
source "$(dirname "$0")/lib.sh"
fail_dump() { echo "--- coordinator log"; tail -40 "$work/coord.log"; }
if [[ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
  echo "skipped, because Fashion-MNIST is not installed"; exit 0
fi
disk=$work/disk
mkdir -p "$disk"
if ! mount -t tmpfs -o size=48m tmpfs "$disk" 2> "$work/mount.err"; then
  echo "skipped, because a small tmpfs cannot be mounted here: $(cat "$work/mount.err")"; exit 0
fi
# Lazily: the coordinator may still hold its files when the trap runs.
trap 'umount -l "$disk" 2>/dev/null; cleanup' EXIT

# About 20 s of training on 2 ranks of 1 thread, a checkpoint every 10 steps.
cat > "$work/long.json" <<'JOB'
{ "name": "e2e-disk-full",
  "dataset": { "name": "fashion-mnist", "trainLimit": 6400, "testLimit": 500 },
  "training": { "epochs": 1, "batchSize": 64, "logEverySteps": 2, "checkpoint": { "everySteps": 10 } } }
JOB
cat > "$work/quick.json" <<'JOB'
{ "name": "e2e-after",
  "dataset": { "name": "fashion-mnist", "trainLimit": 640, "testLimit": 200 },
  "training": { "epochs": 1, "batchSize": 64 } }
JOB

setsid "$COORD" --listen 127.0.0.1:0 --port-file "$work/port" --db "$disk/jobs.db" --spawn-workers 2 \
  --worker-threads 1 --heartbeat-timeout 10 --max-attempts 3 >> "$work/coord.log" 2>&1 &
coord_pid=$!; pids+=($coord_pid)
for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.1; done
[[ -s "$work/port" ]] || { echo "coordinator did not start"; fail_dump; exit 1; }
export PRELUDE_COORDINATOR=127.0.0.1:$(cat "$work/port")

# field ID EXPR: a Python expression over the job's JSON (j).
field() { "$CLIENT" get "$1" --format json | "$PY" -c "import json,sys; j=json.load(sys.stdin); print($2)"; }
health() { "$PY" "$SRC/examples/python/prelude_client.py" health 2> /dev/null; }
# wait_until SECONDS COMMAND...: until the command succeeds.
wait_until() {
  local t=$1; shift
  for _ in $(seq $((t * 4))); do "$@" && return 0; sleep 0.25; done
  return 1
}
step_at_least() { [[ $(field "$1" "j.get('progress', {}).get('step', 0)") -ge $2 ]]; }
state_is() { [[ $(field "$1" "j.get('state')") == "$2" ]]; }
health_is() { [[ $(health) == "$1" ]]; }
t0=$SECONDS

check "health answers SERVING at the start" health_is SERVING
id=$("$CLIENT" submit "$work/long.json")
check "the long job is submitted" [ -n "$id" ]
wait_until 90 step_at_least "$id" 6 || { echo "the job did not start training"; fail_dump; exit 1; }

# Fill the disk to the last byte (writes of 64 KiB, then of single bytes, until ENOSPC)
# and keep it full until told to stop: a checkpoint being written when the disk fills
# is removed on ENOSPC and gives its megabytes back (CI once saw 6 MB free again, and
# the database's writes passed), so whatever is freed is taken again at once.
"$PY" - "$disk/filler" "$work/filled" "$work/stop-filling" <<'PYEOF' &
import os, sys, time
path, filled, stop = sys.argv[1:4]
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
for _ in range(20 * 600):  # at most 10 minutes
    if os.path.exists(stop):
        break
    for size in (1 << 16, 1):
        try:
            while os.write(fd, b"\0" * size):
                pass
        except OSError:
            pass
    if not os.path.exists(filled):
        open(filled, "w").close()
    time.sleep(0.05)
os.close(fd)
PYEOF
filler=$!; pids+=($filler)
wait_until 30 test -e "$work/filled" || { echo "the disk was not filled"; fail_dump; exit 1; }
echo "disk full at step $(field "$id" "j.get('progress', {}).get('step', 0)") ($(df -h --output=avail "$disk" | tail -1) left)"
t_full=$SECONDS

check "health turns NOT_SERVING once a write is refused" wait_until 20 health_is NOT_SERVING
"$CLIENT" submit "$work/quick.json" > /dev/null 2> "$work/err.txt"; rc=$?
check "a submit is refused: exit 3, UNAVAILABLE" bash -c "[ $rc -eq 3 ] && grep -q UNAVAILABLE '$work/err.txt'"
check "with the reason, naming the database: $(cat "$work/err.txt")" \
  grep -q "the coordinator cannot write its database ($disk/jobs.db): database or disk is full; retrying" "$work/err.txt"
check "the coordinator's log says so" grep -q "cannot write its database.*not serving until then" "$work/coord.log"
check "the job is still RUNNING (it goes on training)" state_is "$id" RUNNING
sleep 3  # reports and checkpoints of the running job are refused meanwhile
attempts_full=$(field "$id" "j.get('attempts', 0)")

touch "$work/stop-filling"; wait "$filler"
rm -f "$disk/filler"
t_free=$SECONDS
check "health is SERVING again within 5 s of freeing the space" wait_until 5 health_is SERVING
echo "degraded for $((SECONDS - t_full)) s, serving $((SECONDS - t_free)) s after the space returned"
check "the log says the database takes writes again" grep -q "the database takes writes again" "$work/coord.log"
after=$("$CLIENT" submit "$work/quick.json" 2> "$work/err.txt")
check "a submit is taken again: $after" [ -n "$after" ]

check "the long job ends SUCCEEDED" wait_until 150 state_is "$id" SUCCEEDED
check "the job submitted after recovery ends SUCCEEDED" wait_until 60 state_is "$after" SUCCEEDED
attempts=$(field "$id" "j.get('attempts', 0)")
echo "the long job: attempts $attempts_full while the disk was full, $attempts at the end"
check "its attempts ($attempts) stay within the maximum of 3" [ "$attempts" -ge 1 -a "$attempts" -le 3 ]
check "its final model is kept" [ "$(field "$id" "sum(1 for c in j.get('checkpoints', []) if c.get('final'))")" = 1 ]
check "no job is left RUNNING or QUEUED" \
  [ "$( ("$CLIENT" list --state running; "$CLIENT" list --state queued) | grep -c '^job-')" = 0 ]
"$CLIENT" metrics "$id" --format json > "$work/events.jsonl"
check "its summary is in its history" grep -q '"summary"' "$work/events.jsonl"
echo "checkpoint uploads refused for want of space (the job went on): $(grep -c "could not keep .*No space left on device" "$work/coord.log")"

kill -TERM -- "-$coord_pid" 2>/dev/null
wait "$coord_pid" 2>/dev/null
integrity=$("$PY" -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])" "$disk/jobs.db")
check "SQLite integrity_check: $integrity" [ "$integrity" = ok ]
echo "$((SECONDS - t0)) s"
echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]] || { fail_dump; exit 1; }
