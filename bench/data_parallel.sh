#!/usr/bin/env bash
# Data-parallel figures for cnn-small at global batch 64 on this machine:
#  - 1 rank x 2 threads against 2 ranks x 1 thread (fused allreduce, and buckets
#    reduced with non-blocking allreduce while backward runs);
#  - per-step communication time, its share of step time, bytes reduced per step.
# Usage: bench/data_parallel.sh [BUILD_DIR] [STEPS]   (from the repository root)
set -euo pipefail
build="${1:-build}" steps="${2:-150}"
worker="$build/worker/prelude-worker"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mpi=(mpirun --allow-run-as-root --oversubscribe -x OMP_NUM_THREADS=1)

job() {  # job FILE BUCKET_BYTES
  cat > "$1" <<JSON
{ "name": "dp-bench", "dataset": { "name": "fashion-mnist", "trainLimit": $(( (steps + 10) * 64 )) },
  "model": { "preset": "cnn-small", "activation": { "kind": "PRELU_CHANNELWISE" } },
  "training": { "batchSize": 64, "maxSteps": $steps, "skipTest": true, "logEverySteps": 100000,
                "dataParallel": { "bucketBytes": $2 } } }
JSON
}
job "$tmp/fused.json" 0
job "$tmp/buckets.json" 1048576

summary() { grep '"event":"summary"' "$1"; }
"$worker" run --quiet --threads 2 "$tmp/fused.json" > "$tmp/one.out"
"${mpi[@]}" -np 2 "$worker" run --quiet "$tmp/fused.json" > "$tmp/two.out"
"${mpi[@]}" -np 2 "$worker" run --quiet "$tmp/buckets.json" > "$tmp/twob.out"

/usr/bin/python3 - "$tmp" "$steps" <<'PY'
import json, sys
tmp, steps = sys.argv[1], int(sys.argv[2])
def s(name):
    return [json.loads(l) for l in open(f"{tmp}/{name}.out") if '"summary"' in l][0]
rows = [("1 rank x 2 threads", s("one")), ("2 ranks x 1 thread, fused", s("two")),
        ("2 ranks x 1 thread, 1 MiB buckets", s("twob"))]
print(f"cnn-small, global batch 64, {steps} steps (first 5 not timed for images/s)")
print(f"{'configuration':36} {'img/s':>8} {'step ms':>8} {'comm ms/step':>13} {'comm share':>11} {'bytes/step':>11}")
for name, r in rows:
    ips = r["train_images_per_second"]
    step_ms = 64 / ips * 1000
    comm_ms = r.get("allreduce_seconds", 0) / r["steps"] * 1000
    print(f"{name:36} {ips:8.1f} {step_ms:8.1f} {comm_ms:13.2f} {comm_ms / step_ms:10.1%} {int(r.get('allreduce_bytes_per_step', 0)):11d}")
PY
