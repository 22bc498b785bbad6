#!/usr/bin/env bash
# End to end on loopback: pools declare their data (issue 14, "data where the pools
# are"). A coordinator with no data of its own, a pool with an empty data root next to
# one with Fashion-MNIST: a job goes to the one with the data, and a data set no pool
# holds is refused, listing the ones available. The digests are cached: a pool started
# again hashes nothing.
#
#   pool_data_e2e_test.sh COORDINATOR WORKER CLIENT
set -uo pipefail
COORD=$1 WORKER=$2 CLIENT=$3
PY=/usr/bin/python3
DATA=${PRELUDE_DATA_ROOT:-/usr/share/datasets}
source "$(dirname "$0")/lib.sh"
fail_dump() { for f in coord pool-empty pool-data; do echo "--- $f log"; tail -20 "$work/$f.log"; done; }
if [[ ! -s $DATA/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
  echo "skipped, because Fashion-MNIST is not under $DATA (Debian: apt-get install dataset-fashion-mnist)"
  exit 77
fi
export XDG_CACHE_HOME=$work/cache  # this test's digest cache, not the user's
echo s3cret-token > "$work/token"
mkdir -p "$work/empty" "$work/coord-data"
setsid "$COORD" --listen 127.0.0.1:0 --port-file "$work/port" --db "$work/jobs.db" --token-file "$work/token" \
  --data-root "$work/coord-data" >> "$work/coord.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.1; done
[[ -s "$work/port" ]] || { echo "coordinator did not start"; fail_dump; exit 1; }
export PRELUDE_COORDINATOR=127.0.0.1:$(cat "$work/port")
cli() { "$CLIENT" --token-file "$work/token" "$@"; }
field() { cli get "$1" --format json | "$PY" -c "import json,sys; print(json.load(sys.stdin).get('$2', ''))"; }
pool() {  # pool NAME DATA_ROOT: a one-rank pool; once its log says it registered, its id in $pool_id
  OMP_NUM_THREADS=1 setsid "$WORKER" serve --token-file "$work/token" --quiet --data-root "$2" >> "$work/$1.log" 2>&1 &
  pids+=($!)  # (not in a subshell: the cleanup must see it)
  for _ in $(seq 300); do grep -q "registered as" "$work/$1.log" && break; sleep 0.1; done
  pool_id=$(sed -n 's/.*registered as \(pool-[^ ]*\).*/\1/p' "$work/$1.log" | tail -1)
}

pool pool-empty "$work/empty"
check "the empty pool declared no data set" grep -q "declared 0 data sets, CPU " "$work/pool-empty.log"
pool pool-data "$DATA"
data=$pool_id
check "the other declared Fashion-MNIST, its CPU and bf16" \
  grep -Eq "declared [0-9]+ data sets? \(.*fashion-mnist: 4 files.*\), CPU [a-z0-9_]+, bf16 (yes|no); hashed" \
  "$work/pool-data.log"
grep "declared" "$work/pool-data.log" | sed 's/^/     /'

cat > "$work/job.json" <<'JOB'
{ "name": "where-the-data-is", "dataset": { "name": "fashion-mnist", "trainLimit": 256, "testLimit": 256 },
  "training": { "epochs": 1, "batchSize": 64, "logEverySteps": 2 } }
JOB
# The empty pool registered first and asks as often: only the data decides.
for i in 1 2; do
  id=$(cli submit "$work/job.json")
  timeout 120 "$CLIENT" --token-file "$work/token" watch "$id" > /dev/null 2>&1
  check "job $i SUCCEEDED on the pool with the data" \
    bash -c '[ "$1" = SUCCEEDED ] && [ "$2" = "$3" ]' _ "$(field "$id" state)" "$(field "$id" poolId)" "$data"
done

echo '{"dataset": {"name": "cifar"}}' > "$work/cifar.json"
cli submit "$work/cifar.json" > /dev/null 2> "$work/err.txt"; rc=$?
check "a data set no pool holds is refused, listing the ones available" \
  bash -c '[ "$1" -ne 0 ] && grep -q "spec.dataset.name: no worker pool holds data set \"cifar\"; available: .*fashion-mnist" "$2"' \
  _ "$rc" "$work/err.txt"

# Started again, the pool takes every digest from the cache.
pool pool-data2 "$DATA"
check "a pool started again hashes nothing: every digest from the cache" \
  grep -q "every digest from the cache" "$work/pool-data2.log"

echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]] || { fail_dump; exit 1; }
