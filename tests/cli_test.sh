#!/usr/bin/env bash
# prelude-worker as a user meets it: exit codes, one-line errors naming the field or
# file, and a JSON event stream on stdout. Usage: cli_test.sh PRELUDE_WORKER
set -u
worker="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0

# expect CODE PATTERN -- ARGS...: exit code CODE and stderr's error line matching PATTERN.
expect() {
  local code="$1" pattern="$2"; shift 3
  "$worker" "$@" > "$tmp/out" 2> "$tmp/err"
  local got=$?
  if [[ $got -ne $code ]] || ! grep -qE -- "$pattern" "$tmp/err"; then
    echo "FAIL: prelude-worker $* -> exit $got (want $code), stderr:"; sed 's/^/    /' "$tmp/err"
    fails=$((fails + 1))
  else
    passes=$((passes + 1))
  fi
  # No crash: a user error is never a signal or an abort.
  if grep -qE "terminate called|Aborted|Segmentation" "$tmp/err"; then
    echo "FAIL: crash on $*"; fails=$((fails + 1))
  fi
}

expect 2 "missing command" -- 
expect 2 "missing JOB.json" -- run
expect 2 "unknown option '--bogus'" -- run --bogus x.json
expect 2 "--threads: must be a whole number" -- run --threads zero x.json
expect 2 "nope.json.*(No such file|cannot read)" -- run "$tmp/nope.json"

echo '{ "name": "x", "training": { "batchSize": 64, } }' > "$tmp/malformed.json"
expect 2 "malformed.json" -- run "$tmp/malformed.json"
echo '{ "model": { "activation": { "kind": "SWISH" } } }' > "$tmp/enum.json"
expect 2 "model.activation.kind" -- run "$tmp/enum.json"
echo '{ "training": { "batchSize": -3 } }' > "$tmp/batch.json"
expect 2 "training.batchSize" -- run "$tmp/batch.json"
echo '{ "model": { "activation": { "kind": "RELU", "alphaInit": 0.2 } } }' > "$tmp/relu.json"
expect 2 "model.activation.alphaInit" -- run "$tmp/relu.json"
echo '{ "dataset": { "trainImages": "../../etc/passwd", "trainLabels": "a", "testImages": "b", "testLabels": "c" } }' > "$tmp/escape.json"
expect 2 "dataset.trainImages" -- run --data-root "$tmp" "$tmp/escape.json"

# One flag reader for run and serve (common/flags.h): --flag=VALUE as well, and the
# command line's errors named; the help on stdout with exit 0.
expect 2 "dataset.trainImages" -- run --data-root="$tmp" "$tmp/escape.json"
expect 2 "--threads: needs a value" -- run "$tmp/escape.json" --threads
expect 2 "--quiet: takes no value" -- run --quiet=yes "$tmp/escape.json"
expect 2 "more than one job file given" -- run "$tmp/escape.json" "$tmp/batch.json"
expect 2 "unknown argument '--bogus'" -- serve --bogus
expect 2 "unknown argument 'extra'" -- serve extra
expect 2 "--threads: must be a whole number from 1 to 1024, got '0'" -- serve --threads=0
expect 2 "--coordinator: needs a value" -- serve --quiet --coordinator
expect 2 "nope: cannot read the token file" -- serve --token-file "$tmp/nope"
for args in "--help" "run --help" "serve --help"; do
  # shellcheck disable=SC2086  # the words of $args are the arguments
  if "$worker" $args > "$tmp/out" 2> "$tmp/err" && grep -q "^usage: " "$tmp/out" && grep -q "^  --" "$tmp/out" &&
     [[ ! -s "$tmp/err" ]]; then
    passes=$((passes + 1))
  else
    echo "FAIL: prelude-worker $args: no usage on stdout with exit 0"; fails=$((fails + 1))
  fi
done

# Corrupt and missing data files under a data root of our own.
mkdir -p "$tmp/root/fashion-mnist"
printf 'not an idx file at all' > "$tmp/root/fashion-mnist/train-images-idx3-ubyte"
printf '\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02' > "$tmp/root/fashion-mnist/train-labels-idx1-ubyte"
cp "$tmp/root/fashion-mnist/train-labels-idx1-ubyte" "$tmp/root/fashion-mnist/t10k-labels-idx1-ubyte"
cp "$tmp/root/fashion-mnist/train-images-idx3-ubyte" "$tmp/root/fashion-mnist/t10k-images-idx3-ubyte"
echo '{ "dataset": { "name": "fashion-mnist" } }' > "$tmp/data.json"
expect 2 "train-images-idx3-ubyte" -- run --data-root "$tmp/root" "$tmp/data.json"
expect 2 "fashion-mnist" -- run --data-root "$tmp/empty-root" "$tmp/data.json"

# A model far too large for this machine: refused before allocating, not a crash.
if [[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
  echo '{ "dataset": { "testLimit": 10 }, "model": { "preset": "plain-30", "width": 1024 }, "training": { "batchSize": 50000 } }' > "$tmp/huge.json"
  expect 2 "model: batch 50000 needs about [0-9]+ MiB" -- run "$tmp/huge.json"
fi

# A real quick job: exit 0, every stdout line a JSON object with "event", summary last.
if [[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
  cat > "$tmp/quick.json" <<'JSON'
{ "name": "cli-quick", "dataset": { "name": "fashion-mnist", "trainLimit": 1280, "testLimit": 500 },
  "model": { "preset": "cnn-small", "activation": { "kind": "PRELU_SHARED" } },
  "training": { "epochs": 1, "batchSize": 64, "logEverySteps": 5 } }
JSON
  if "$worker" run --threads 2 "$tmp/quick.json" > "$tmp/events" 2> "$tmp/err" &&
     /usr/bin/python3 - "$tmp/events" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
kinds = [l["event"] for l in lines]
assert kinds[0] == "diagnostics" and kinds[-1] == "summary", kinds
assert kinds.count("step") == 4 and kinds.count("epoch") == 1, kinds
s = lines[-1]
for k in ("test_accuracy", "test_loss", "train_loss", "steps", "train_images_per_second", "alphas", "seconds"):
    assert k in s, k
assert s["steps"] == 20 and len(s["alphas"]) == 5 and len(s["alphas"][0]["values"]) == 1
d = lines[0]
assert len(d["activation_std"]) == len(d["gradient_std"]) == 6
PY
  then passes=$((passes + 1)); else echo "FAIL: quick job"; cat "$tmp/err"; fails=$((fails + 1)); fi
  grep -q "epoch 1 done" "$tmp/err" || { echo "FAIL: no progress on stderr"; fails=$((fails + 1)); }
fi

echo "$passes passed, $fails failed"
[[ $fails -eq 0 ]]
