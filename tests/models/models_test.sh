#!/usr/bin/env bash
# Trained models out of Prelude, as a user gets them: prelude-worker run
# --checkpoint-dir, --resume, export (ONNX and Prelude), eval and predict.
# Every model kind Prelude trains is exported to ONNX, checked by onnx's checker
# and run by an independent runtime (OpenCV's DNN module): its logits must equal
# Prelude's within 1e-4 of the largest logit on 100 test images.
# Usage: models_test.sh PRELUDE_WORKER SOURCE_DIR
set -u
worker="$1" src="$2"
py=/usr/bin/python3  # Debian's, with python3-onnx and python3-opencv
data=/usr/share/datasets/fashion-mnist
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

if [[ ! -f $data/t10k-images-idx3-ubyte.gz ]]; then
  echo "skipped, because Fashion-MNIST is not installed ($data)"; exit 0
fi
if ! $py -c 'import onnx, cv2' 2>/dev/null; then
  echo "skipped, because $py lacks onnx or cv2 (apt-get install python3-onnx python3-opencv)"; exit 0
fi

# job NAME MODEL_JSON: a short run (30 steps) on a slice of the data.
job() {
  cat > "$tmp/$1.json" <<JSON
{ "name": "$1", "dataset": { "name": "fashion-mnist", "trainLimit": 1920, "testLimit": 500 },
  "model": $2,
  "training": { "epochs": 1, "batchSize": 64, "logEverySteps": 10 } }
JSON
}
job cnn-cw '{ "preset": "cnn-small", "activation": { "kind": "PRELU_CHANNELWISE" } }'
job cnn-shared '{ "preset": "cnn-small", "activation": { "kind": "PRELU_SHARED" } }'
job plain-leaky '{ "preset": "plain-5", "width": 8, "activation": { "kind": "LEAKY_RELU", "alphaInit": 0.2 } }'
job explicit '{ "activation": { "kind": "PRELU_CHANNELWISE" }, "layers": [
    { "conv": { "outChannels": 8, "kernel": 5, "padding": 0, "stride": 2 } }, { "activation": { "kind": "RELU" } },
    { "pool": { "kind": "AVG", "kernel": 2 } }, { "conv": { "outChannels": 16 } }, { "activation": {} },
    { "pool": { "kind": "MAX", "kernel": 3, "stride": 2 } },
    { "fc": { "outFeatures": 32 } }, { "activation": {} }, { "fc": { "outFeatures": 32 } },
    { "activation": { "kind": "PRELU_SHARED" } }, { "fc": { "outFeatures": 10 } } ] }'

for name in cnn-cw cnn-shared plain-leaky explicit; do
  dir="$tmp/ckpt-$name"
  if ! "$worker" run "$tmp/$name.json" --checkpoint-dir "$dir" --quiet > "$tmp/$name.events" 2> "$tmp/$name.err"; then
    bad "$name: training failed: $(tail -1 "$tmp/$name.err")"; continue
  fi
  [[ -f $dir/final.ckpt && -f $dir/step-30.ckpt ]] && ok || bad "$name: checkpoints missing: $(ls "$dir")"
  ls -a "$dir" | grep -q tmp && bad "$name: a temporary file was left in $dir" || ok

  # ONNX: checker, OpenCV against prelude-worker predict on 100 test images.
  if "$worker" export "$dir/final.ckpt" --format onnx -o "$tmp/$name.onnx" 2> "$tmp/err" &&
     "$worker" predict "$dir/final.ckpt" --images $data/t10k-images-idx3-ubyte.gz --limit 100 --top 2 \
        > "$tmp/$name.pred" 2> "$tmp/err" &&
     $py "$src/tests/models/check_onnx.py" "$tmp/$name.onnx" "$tmp/$name.pred" $data/t10k-images-idx3-ubyte.gz 100 \
        > "$tmp/$name.check" 2>&1; then
    ok; echo "$name: $(cat "$tmp/$name.check")"
  else
    bad "$name: ONNX export or check: $(cat "$tmp/err" "$tmp/$name.check" 2>/dev/null | tail -3)"
  fi

  # eval on the job's test slice = the summary's test accuracy (other batch sizes
  # may round a logit differently: one image of 500 at most); a well-formed matrix.
  "$worker" eval "$dir/final.ckpt" > "$tmp/$name.eval" 2> "$tmp/err" || bad "$name: eval failed: $(cat "$tmp/err")"
  $py - "$tmp/$name.eval" "$tmp/$name.events" "$tmp/$name.pred" <<'PY' && ok || bad "$name: eval/predict disagree"
import json, math, sys
ev = json.load(open(sys.argv[1]))
summary = [json.loads(l) for l in open(sys.argv[2]) if '"summary"' in l][-1]
m = ev["confusion_matrix"]
assert ev["images"] == 500 == sum(map(sum, m)), ev["images"]
assert abs(ev["test_accuracy"] - sum(m[i][i] for i in range(10)) / 500) < 1e-12
assert abs(ev["test_accuracy"] - summary["test_accuracy"]) <= 1 / 500 + 1e-12, (ev["test_accuracy"], summary["test_accuracy"])
assert abs(ev["test_loss"] - summary["test_loss"]) < 1e-3, (ev["test_loss"], summary["test_loss"])
for i, pc in enumerate(ev["per_class_accuracy"]):
    assert abs(pc["accuracy"] - m[i][i] / max(1, sum(m[i]))) < 1e-12
assert [pc["class"] for pc in ev["per_class_accuracy"]][:2] == ["T-shirt/top", "Trouser"]
for line in open(sys.argv[3]):
    p = json.loads(line)
    best = max(range(10), key=lambda j: p["logits"][j])
    assert p["top"][0]["label"] == best and len(p["top"]) == 2
    z = sum(math.exp(v - max(p["logits"])) for v in p["logits"])
    assert abs(p["top"][0]["probability"] - 1 / z) < 1e-6
PY
done

# Resume from the mid-run checkpoint of the first model: the same final model
# (bit for bit: compared as exported, without optimizer state).
dir="$tmp/ckpt-cnn-cw"
cat > "$tmp/every.json" <<JSON
{ "name": "cnn-cw", "dataset": { "name": "fashion-mnist", "trainLimit": 1920, "testLimit": 500 },
  "model": { "preset": "cnn-small", "activation": { "kind": "PRELU_CHANNELWISE" } },
  "training": { "epochs": 1, "batchSize": 64, "logEverySteps": 10, "checkpoint": { "everySteps": 12 } } }
JSON
if "$worker" run "$tmp/every.json" --checkpoint-dir "$tmp/every" --quiet > /dev/null 2>&1 &&
   "$worker" run "$tmp/every.json" --resume "$tmp/every/step-12.ckpt" --checkpoint-dir "$tmp/resumed" \
      > "$tmp/resumed.events" 2> "$tmp/err" &&
   "$worker" export "$tmp/every/final.ckpt" --format onnx -o "$tmp/a.onnx" 2>/dev/null &&
   "$worker" export "$tmp/resumed/final.ckpt" --format onnx -o "$tmp/b.onnx" 2>/dev/null &&
   cmp -s "$tmp/a.onnx" "$tmp/b.onnx"; then
  ok
else
  bad "resume from step-12.ckpt did not give the same final model: $(tail -2 "$tmp/err")"
fi
grep -q '"event":"resumed".*"step":12' "$tmp/resumed.events" && ok || bad "no resumed event naming step 12"
grep -q "resumed from .*step-12.ckpt at step 12" "$tmp/err" && ok || bad "no resumed progress line"

# Bad checkpoints and requests: exit 2, one line naming the file and the reason.
expect() {
  local pattern="$1"; shift
  "$worker" "$@" > "$tmp/out" 2> "$tmp/err"
  local code=$?
  if [[ $code -ne 2 ]] || ! grep -qE -- "$pattern" "$tmp/err" || grep -qE "terminate|Abort|Segmentation" "$tmp/err"; then
    bad "prelude-worker $* -> exit $code, stderr: $(cat "$tmp/err")"
  else
    ok
  fi
}
ckpt="$dir/final.ckpt"
head -c 1000 "$ckpt" > "$tmp/truncated.ckpt"
cp "$ckpt" "$tmp/corrupt.ckpt"; printf '\x42' | dd of="$tmp/corrupt.ckpt" bs=1 seek=5000 conv=notrunc 2>/dev/null
echo "not a checkpoint" > "$tmp/text.ckpt"
expect "truncated.ckpt: truncated or extended" eval "$tmp/truncated.ckpt"
expect "corrupt.ckpt: checksum mismatch" export "$tmp/corrupt.ckpt" --format onnx -o "$tmp/x.onnx"
expect "text.ckpt: not a Prelude checkpoint" predict "$tmp/text.ckpt" --images $data/t10k-images-idx3-ubyte.gz
expect "nope.ckpt: cannot read" eval "$tmp/nope.ckpt"
expect "corrupt.ckpt: checksum mismatch" run "$tmp/every.json" --resume "$tmp/corrupt.ckpt"
expect "the job: model.activation.kind: differs from the checkpoint's" run "$tmp/cnn-shared.json" --resume "$ckpt"
expect "t10k-labels-idx1-ubyte.gz" predict "$ckpt" --images $data/t10k-labels-idx1-ubyte.gz
expect "--format: must be onnx or prelude" export "$ckpt" --format tflite -o "$tmp/x"
expect "--top: must be a whole number from 1 to 10" predict "$ckpt" --images $data/t10k-images-idx3-ubyte.gz --top 11
[[ ! -e $tmp/x.onnx && ! -e $tmp/x ]] && ok || bad "a refused export left a file"

# export --format prelude: the model without optimizer state, still evaluable,
# and refused for resuming.
"$worker" export "$ckpt" --format prelude -o "$tmp/model.ckpt" 2>/dev/null
[[ $(stat -c %s "$tmp/model.ckpt") -lt $(($(stat -c %s "$ckpt") * 6 / 10)) ]] && ok || bad "exported model not smaller"
"$worker" eval "$tmp/model.ckpt" > /dev/null 2>&1 && ok || bad "eval of an exported model failed"
expect "no optimizer state" run "$tmp/cnn-cw.json" --resume "$tmp/model.ckpt"

echo "$passes passed, $fails failed"
[[ $fails -eq 0 ]]
