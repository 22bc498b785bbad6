#!/usr/bin/env bash
# prelude-worker under mpirun: only rank 0 prints events, the summary counts the
# ranks, and a rank that fails takes the job down with a message naming it.
# Usage: worker_mpi_test.sh MPIEXEC PRELUDE_WORKER
set -u
mpiexec="$1" worker="$2"
mpi=("$mpiexec" --allow-run-as-root --oversubscribe -x OMP_NUM_THREADS=1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
check() { if eval "$2"; then passes=$((passes + 1)); else echo "FAIL: $1"; fails=$((fails + 1)); fi; }

if [[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
  cat > "$tmp/job.json" <<'JSON'
{ "name": "mpi-quick", "dataset": { "name": "fashion-mnist", "trainLimit": 1280, "testLimit": 500 },
  "model": { "preset": "cnn-small", "activation": { "kind": "PRELU_CHANNELWISE" } },
  "training": { "batchSize": 64, "logEverySteps": 5 } }
JSON
  timeout 300 "${mpi[@]}" -np 2 "$worker" run "$tmp/job.json" > "$tmp/out" 2> "$tmp/err"
  check "2-rank run exits 0" '[[ $? -eq 0 ]] || { cat "$tmp/err"; false; }'
  check "one summary, from rank 0 only" '[[ $(grep -c "\"event\":\"summary\"" "$tmp/out") -eq 1 ]]'
  check "four step events" '[[ $(grep -c "\"event\":\"step\"" "$tmp/out") -eq 4 ]]'
  check "summary says 2 ranks" 'grep -q "\"ranks\":2" "$tmp/out"'
  check "summary has allreduce time" 'grep -q "\"allreduce_seconds\":" "$tmp/out"'

  # Rank 1 gets a data root without the data: the job ends non-zero, naming rank 1.
  timeout 300 "$mpiexec" --allow-run-as-root --oversubscribe -x OMP_NUM_THREADS=1 \
      -np 1 "$worker" run "$tmp/job.json" : -np 1 "$worker" run --data-root "$tmp/none" "$tmp/job.json" \
      > "$tmp/out" 2> "$tmp/err"
  code=$?
  check "failing rank: non-zero exit (got $code)" '[[ $code -ne 0 && $code -ne 124 ]]'
  check "failing rank named with its cause" 'grep -q "rank 1: .*fashion-mnist" "$tmp/err" || { cat "$tmp/err"; false; }'

  # A rank killed mid-job: the others must not hang; the job ends non-zero, quickly.
  sed 's/"batchSize": 64,/"batchSize": 64, "epochs": 20,/' "$tmp/job.json" > "$tmp/long.json"
  "${mpi[@]}" -np 2 "$worker" run --quiet "$tmp/long.json" > /dev/null 2> "$tmp/err" &
  launcher=$!
  victim=""
  for _ in $(seq 100); do  # the ranks are mpirun's children
    victim=$(pgrep -P "$launcher" -f prelude-worker | head -n 1)
    [[ -n "$victim" ]] && break
    sleep 0.1
  done
  sleep 3  # let it get into training
  kill -9 "$victim"
  start=$SECONDS
  wait "$launcher"
  code=$?
  check "killed rank: job exits non-zero (got $code)" '[[ $code -ne 0 ]]'
  check "killed rank: the others did not hang ($((SECONDS - start)) s)" '[[ $((SECONDS - start)) -lt 30 ]]'
fi

# A batch the ranks cannot share: a clear error, exit 2, no hang.
echo '{ "training": { "batchSize": 63 } }' > "$tmp/odd.json"
timeout 120 "${mpi[@]}" -np 2 "$worker" run "$tmp/odd.json" > /dev/null 2> "$tmp/err"
code=$?
check "indivisible batch: exit 2 (got $code)" '[[ $code -eq 2 ]]'
check "indivisible batch: names the field" 'grep -q "training.batchSize: 63 is not divisible by the 2 ranks" "$tmp/err" || { cat "$tmp/err"; false; }'

echo "$passes passed, $fails failed"
[[ $fails -eq 0 ]]
