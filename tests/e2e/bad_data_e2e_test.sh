#!/usr/bin/env bash
# End to end on loopback: data a worker cannot hold fails its job as "bad input: ...",
# and the same 2-rank pool (same mpirun, same ranks) then trains the next job. Before
# issue 12 item 6 such data OOM-killed or MPI_Aborted the pool, and the job ended as
# "pool stopped responding ... giving up".
#
#   bad_data_e2e_test.sh COORDINATOR WORKER CLIENT
set -uo pipefail
COORD=$1 WORKER=$2 CLIENT=$3
PY=/usr/bin/python3
source "$(dirname "$0")/lib.sh"
fail_dump() { echo "--- coordinator log"; tail -40 "$work/coord.log"; }

# The data root: 256 images of 28x28 with their labels, a petabyte announced in the
# 16 bytes of an image file's header, and a gzip bomb: zeros enough that their
# bytes (a data set is held a byte a pixel) need 1.25 times a rank's share of this
# host's RAM (on 24 GB, 19 million images of 28x28, 15 GB of zeros, in 15 MB), and
# its labels.
mkdir -p "$work/data"
"$PY" - "$work/data" <<'PYEOF'
import gzip, os, random, struct, sys, zlib
d = sys.argv[1]
def header(dims): return struct.pack(">I", 0x0800 | len(dims)) + b"".join(struct.pack(">I", x) for x in dims)
rng = random.Random(1)
labels = bytes(rng.randrange(10) for _ in range(256))
images = bytes(min(255, 40 + 20 * labels[i // 784] + rng.randrange(40)) for i in range(256 * 784))
open(f"{d}/small-images", "wb").write(header([256, 28, 28]) + images)
open(f"{d}/small-labels", "wb").write(header([256]) + labels)
open(f"{d}/huge-images", "wb").write(header([256, 65535, 65535]))
def member(b):
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    return z.compress(b) + z.flush()
ram = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal:")).split()[1]) * 1024
thousands = int(1.25 * ram / 2 / 784) // 1000 + 1  # 2 ranks, a byte a pixel
with open(f"{d}/bomb-images.gz", "wb") as f:
    f.write(member(header([1000 * thousands, 28, 28])))
    block = member(bytes(784000))
    for _ in range(thousands): f.write(block)
with open(f"{d}/bomb-labels.gz", "wb") as f:
    f.write(member(header([1000 * thousands])))
    block = member(bytes(1000))
    for _ in range(thousands): f.write(block)
PYEOF
job() {  # job NAME IMAGES LABELS LIMIT
  echo "{ \"name\": \"$1\", \"dataset\": { \"trainImages\": \"$2\", \"trainLabels\": \"$3\", \"trainLimit\": $4 },
    \"model\": { \"layers\": [ { \"fc\": { \"outFeatures\": 10 } } ] },
    \"training\": { \"batchSize\": 32, \"epochs\": 2, \"skipTest\": true, \"logEverySteps\": 4 } }"
}
job huge huge-images small-labels 0 > "$work/huge.json"
job bomb bomb-images.gz bomb-labels.gz 0 > "$work/bomb.json"
job bomb-limited bomb-images.gz bomb-labels.gz 128 > "$work/bomb-limited.json"
job small small-images small-labels 0 > "$work/small.json"

echo s3cret-token > "$work/token"
setsid "$COORD" --listen 127.0.0.1:0 --port-file "$work/port" --db "$work/jobs.db" --token-file "$work/token" \
  --data-root "$work/data" --spawn-workers 2 --heartbeat-timeout 5 >> "$work/coord.log" 2>&1 &
coord_pid=$!
pids+=($coord_pid)
for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.1; done
[[ -s "$work/port" ]] || { echo "coordinator did not start"; fail_dump; exit 1; }
export PRELUDE_COORDINATOR=127.0.0.1:$(cat "$work/port")
cli() { "$CLIENT" --token-file "$work/token" "$@"; }
field() { cli get "$1" --format json | "$PY" -c "import json,sys; print(json.load(sys.stdin).get('$2', ''))"; }
# The pool: mpirun (the coordinator's child) and its ranks, once all of them are up.
pool() {
  local m r
  for _ in $(seq 100); do
    m=$(pgrep -x mpirun -P "$coord_pid")
    [[ -n $m ]] && r=$(pgrep -d' ' -x prelude-worker -P "$m")
    [[ -n ${r:-} && $(echo $r | wc -w) -eq 2 ]] && { echo "$m $r"; return; }
    sleep 0.1
  done
}

pool_before=$(pool)
check "the coordinator spawned a pool of 2 ranks" [ "$(echo $pool_before | wc -w)" -eq 3 ]

for name in huge bomb; do
  id=$(cli submit "$work/$name.json")
  timeout 120 "$CLIENT" --token-file "$work/token" watch "$id" > /dev/null 2>&1
  error=$(field "$id" error)
  echo "     $name: $(field "$id" state): $error"
  # (The values as arguments: an error says "this rank's", a quote in any shell text.)
  check "$name: FAILED as bad input naming the file and the budget" \
    bash -c '[ "$1" = FAILED ] && [[ "$2" == "bad input: "*"$3-images"*"more than this rank'"'"'s budget of"* ]]' _ \
    "$(field "$id" state)" "$error" "$name"
  check "$name: one attempt, the pool never lost" [ "$(field "$id" attempts)" = 1 ]
done
check "the pool lives on: the same mpirun and ranks" [ "$(pool)" = "$pool_before" ]

for name in bomb-limited small; do
  id=$(cli submit "$work/$name.json")
  timeout 120 "$CLIENT" --token-file "$work/token" watch "$id" > /dev/null 2>&1
  check "$name: the next job SUCCEEDED on the same pool" \
    bash -c "[ '$(field "$id" state)' = SUCCEEDED ] && [ '$(pool)' = '$pool_before' ]"
done

[[ $failures -eq 0 ]] || fail_dump
echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
