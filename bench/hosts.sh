#!/usr/bin/env bash
# Ranks across hosts, figures (issue 14): cnn-small, channel-wise PReLU, global batch
# 64, 2 ranks x 1 thread, `prelude-worker run` under mpirun, in four set-ups:
#  - one host, shared memory (OpenMPI's default: vader);
#  - one host, TCP over loopback (--mca btl tcp,self): TCP's cost without a network;
#  - two hosts: network namespaces joined by a bridge (scripts/netns-hosts.sh), rank 0
#    on one, rank 1 on the other, TCP between them, one fused allreduce per step;
#  - the same with 1 MiB buckets reduced while backward runs (dataParallel.bucketBytes);
#  - the same with the buckets reduced in bf16 (dataParallel.reducePrecision: half the
#    bytes on the wire).
# For each: images/s, step time, allreduce time per step, its share of the step, and
# the bandwidth that makes (a 2-rank ring moves the S bytes once per rank: S / time).
# The allreduce time in training includes waiting for the slower rank; so each
# transport is also measured alone (ranks idle, compiled with mpicc here): the median
# of 40 MPI_Allreduce (the fastest of REPEATS runs) of the gradient's size S, and of
# S/2 (what reducing gradients in bf16 sends, as a float sum: the bf16 sum's MPI
# operation adds on top of that).
# Each set-up runs REPEATS times; the fastest run is shown (the machine is shared).
# Needs root for the namespaces; without it, only the one-host rows.
#
# Usage: bench/hosts.sh [BUILD_DIR] [STEPS] [REPEATS]   (from the repository root)
set -euo pipefail
build="${1:-build}" steps="${2:-150}" repeats="${3:-2}"
worker="$(realpath "$build/worker/prelude-worker")"
src="$(cd "$(dirname "$0")/.." && pwd)"
netns="$src/scripts/netns-hosts.sh" rsh="$src/scripts/netns-rsh.sh"
tmp=$(mktemp -d)
tag=plb$$
hosts=("${tag}h1" "${tag}h2")
made=0
cleanup() {
  ((made)) && "$netns" down "${hosts[@]}" "${tag}net"
  rm -rf "$tmp" /tmp/ompi."$tag"*
}
trap cleanup EXIT
trap 'exit 1' INT TERM

mpi=(mpirun --oversubscribe --bind-to none -np 2 -x OMP_NUM_THREADS=1)
[[ $(id -u) -ne 0 ]] || mpi=(mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 -x OMP_NUM_THREADS=1)

job() {  # job FILE BUCKET_BYTES [REDUCE_PRECISION]
  cat > "$1" <<JSON
{ "name": "hosts-bench", "dataset": { "name": "fashion-mnist", "trainLimit": $(( (steps + 10) * 64 )) },
  "model": { "preset": "cnn-small", "activation": { "kind": "PRELU_CHANNELWISE" } },
  "training": { "batchSize": 64, "maxSteps": $steps, "skipTest": true, "logEverySteps": 100000,
                "dataParallel": { "bucketBytes": $2, "reducePrecision": "${3:-FP32}" } } }
JSON
}
job "$tmp/fused.json" 0
job "$tmp/buckets.json" 1048576
job "$tmp/bf16.json" 1048576 BF16

# The allreduce alone: BYTES of floats summed, 5 untimed, then 40 timed (each after a barrier).
cat > "$tmp/allreduce.c" <<'C'
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
static int cmp(const void* a, const void* b) { double x = *(const double*)a, y = *(const double*)b; return (x > y) - (x < y); }
int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  for (int a = 1; a < argc; ++a) {
    long n = atol(argv[a]) / 4;
    float* x = calloc(n, 4);
    double t[40];
    for (int i = -5; i < 40; ++i) {
      MPI_Barrier(MPI_COMM_WORLD);
      double t0 = MPI_Wtime();
      MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      if (i >= 0) t[i] = MPI_Wtime() - t0;
    }
    qsort(t, 40, sizeof t[0], cmp);
    if (rank == 0) printf("{\"bytes\": %ld, \"median_ms\": %.3f}\n", n * 4, (t[19] + t[20]) / 2 * 1000);
    free(x);
  }
  MPI_Finalize();
  return 0;
}
C
mpicc -O2 -o "$tmp/allreduce" "$tmp/allreduce.c"

run() {  # run NAME COMMAND...: REPEATS runs, their summaries in $tmp/NAME.out
  : > "$tmp/$1.out"
  for _ in $(seq "$repeats"); do
    "${@:2}" > "$tmp/$1.run" 2> "$tmp/$1.err" || { echo "$1 failed:"; tail -20 "$tmp/$1.err"; exit 1; }
    grep '"event":"summary"' "$tmp/$1.run" >> "$tmp/$1.out"
  done
}

probe() {  # probe NAME COMMAND...: the allreduce alone, of S and S/2 bytes, REPEATS times
  : > "$tmp/$1.probe"
  for _ in $(seq "$repeats"); do
    "${@:2}" "$tmp/allreduce" 3490472 1745236 >> "$tmp/$1.probe" 2> "$tmp/$1.err" ||
      { echo "$1 failed:"; tail -20 "$tmp/$1.err"; exit 1; }
  done
}
run shm "${mpi[@]}" "$worker" run --quiet "$tmp/fused.json"
probe shm "${mpi[@]}"
run loopback "${mpi[@]}" --mca btl tcp,self --mca btl_tcp_if_include lo "$worker" run --quiet "$tmp/fused.json"
probe loopback "${mpi[@]}" --mca btl tcp,self --mca btl_tcp_if_include lo
rows=(shm loopback)
if [[ $(id -u) -eq 0 ]] && "$netns" up "${tag}net" 10.78.0 "${hosts[@]}" > /dev/null 2> "$tmp/netns.err"; then
  made=1
  # shellcheck disable=SC2054  # --host takes a comma-separated list
  across=("$netns" run "${hosts[0]}" "${mpi[@]}" --mca plm_rsh_agent "$rsh" --host "${hosts[0]},${hosts[1]}"
          --mca btl tcp,self --mca btl_tcp_if_include 10.78.0.0/24 --mca oob_tcp_if_include 10.78.0.0/24)
  run hosts "${across[@]}" "$worker" run --quiet "$tmp/fused.json"
  run hostsb "${across[@]}" "$worker" run --quiet "$tmp/buckets.json"
  run hostsbf "${across[@]}" "$worker" run --quiet "$tmp/bf16.json"
  probe hosts "${across[@]}"
  rows+=(hosts hostsb hostsbf)
else
  echo "(no namespace hosts: $( [[ $(id -u) -eq 0 ]] && tail -1 "$tmp/netns.err" || echo "not root"); one-host rows only)"
fi

/usr/bin/python3 - "$tmp" "$steps" "$repeats" "${rows[@]}" <<'PY'
import json, os, sys
tmp, steps, repeats, names = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
label = {"shm": "one host, shared memory", "loopback": "one host, TCP over loopback",
         "hosts": "two namespace hosts, TCP, fused", "hostsb": "two namespace hosts, TCP, 1 MiB buckets",
         "hostsbf": "two hosts, 1 MiB buckets, bf16 reduction"}
print(f"cnn-small, global batch 64, 2 ranks x 1 thread, {steps} steps, fastest of {repeats}; "
      f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
print(f"{'training':42} {'img/s':>7} {'step ms':>8} {'allreduce ms':>13} {'share':>6} {'MB/s':>6} {'bytes/step':>11}")
for n in names:
    runs = [json.loads(l) for l in open(f"{tmp}/{n}.out") if l.strip()]
    r = max(runs, key=lambda r: r["train_images_per_second"])
    ips = r["train_images_per_second"]
    step_ms = 64 / ips * 1000
    comm_ms = r.get("allreduce_seconds", 0) / r["steps"] * 1000
    size = int(r.get("allreduce_bytes_per_step", 0))
    mbs = size / (comm_ms / 1000) / 1e6 if comm_ms else 0
    print(f"{label[n]:42} {ips:7.0f} {step_ms:8.1f} {comm_ms:13.1f} {comm_ms / step_ms:6.0%} {mbs:6.0f} {size:11d}")
print(f"{'the allreduce alone (ranks idle), median of 40':42} {'S ms':>7} {'MB/s':>8} {'S/2 ms':>13} {'MB/s':>6}")
for n in names:
    if not os.path.exists(f"{tmp}/{n}.probe"):
        continue
    p = {}
    for l in open(f"{tmp}/{n}.probe"):  # the fastest median of each size
        r = json.loads(l)
        if r["bytes"] not in p or r["median_ms"] < p[r["bytes"]]["median_ms"]:
            p[r["bytes"]] = r
    p = sorted(p.values(), key=lambda r: -r["bytes"])
    print(f"{label[n].replace(', fused', ''):42} {p[0]['median_ms']:7.1f} {p[0]['bytes'] / p[0]['median_ms'] / 1e3:8.0f} "
          f"{p[1]['median_ms']:13.1f} {p[1]['bytes'] / p[1]['median_ms'] / 1e3:6.0f}")
PY
