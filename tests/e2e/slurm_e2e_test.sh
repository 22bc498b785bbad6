#!/usr/bin/env bash
# Jobs dispatched through Slurm (issue 14), on a one-node Slurm this test starts itself
# (tests/slurm/start-slurm.sh: munged, slurmctld, slurmd; 2 CPUs) and stops by pid.
# The coordinator runs with --slurm; every job becomes a batch job whose tasks start
# with `srun --mpi=pmix prelude-worker serve --job ID`.
#  1. A job of 1 rank and one of 2 ranks go through Slurm to SUCCEEDED (each on a pool
#     of its ranks, each with its Slurm job id in `prelude get`).
#  2. While a 2-rank job holds both CPUs, a 1-rank job pends in Slurm: `prelude get`
#     shows Slurm's reason; `prelude cancel` ends its Slurm job (squeue no longer
#     lists it) and the job is CANCELLED.
#  3. An outside `scancel` of the running 2-rank job: the job is requeued, submitted
#     again, resumes from its checkpoint and SUCCEEDS.
#  4. The coordinator restarts while a job runs: it re-attaches to the job's Slurm job
#     (no second sbatch: the job's submissions stay 1, Slurm saw no new job), whose
#     worker takes the job back, resumes it, and it SUCCEEDS.
#  5. A coordinator serving TLS: a job's batch script gives its workers --tls-ca (from
#     --pool-tls-ca) and the job SUCCEEDS.
# Skipped ("skipped, because ...", exit 77) where Slurm cannot start (not root, not
# installed).
#
#   slurm_e2e_test.sh COORDINATOR WORKER CLIENT SOURCE_DIR
set -uo pipefail
COORD=$1 WORKER=$2 CLIENT=$3 SRC=$4
PY=/usr/bin/python3
skip() { echo "skipped, because $*"; exit 77; }
[[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]] || skip "Fashion-MNIST is not installed"

source "$(dirname "$0")/lib.sh"
SLURM=$SRC/tests/slurm/start-slurm.sh
trap 'cleanup_all' EXIT
trap 'exit 1' INT TERM
cleanup_all() { "$SLURM" stop "$work/slurm"; cleanup; }
fail_dump() {
  for log in "$work"/*.log "$work"/sl/*.out "$work"/slurm/slurmctld.log; do
    [[ -f $log ]] && { echo "--- $log"; tail -25 "$log"; }
  done
}

out=$("$SLURM" start "$work/slurm" 2>&1); rc=$?
[[ $rc -eq 77 ]] && skip "${out#cannot start Slurm: }"
[[ $rc -eq 0 ]] || { echo "start-slurm.sh failed ($rc): $out"; exit 1; }
source "$work/slurm/env"  # SLURM_CONF, for the coordinator's sbatch and for squeue here
echo "$out"

extra=()  # more flags for the coordinator (TLS, in 5.)
start_coordinator() {  # [PORT]: the running Slurm jobs' workers dial the port they were given
  rm -f "$work/port"
  setsid "$COORD" --listen "127.0.0.1:${1:-0}" --port-file "$work/port" --db "$work/jobs.db" --http '' \
    --slurm --slurm-dir "$work/sl" --worker-binary "$WORKER" --heartbeat-timeout 5 --max-attempts 3 "${extra[@]}" \
    >> "$work/coord.log" 2>&1 &
  coord=$!; pids+=("$coord"); disown
  for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.1; done
  [[ -s "$work/port" ]] || { echo "coordinator did not start"; fail_dump; exit 1; }
  export PRELUDE_COORDINATOR=127.0.0.1:$(cat "$work/port")
}
start_coordinator

slurm_id() { job_json "$1" "j.get('slurmJobId', j.get('slurm_job_id', ''))"; }
submissions() { job_json "$1" "j.get('slurmSubmissions', j.get('slurm_submissions', 0))"; }
in_squeue() { [ -n "$(squeue -h -j "$1" -o %i 2>/dev/null)" ]; }
slurm_jobs_seen() { scontrol show jobs 2>/dev/null | grep -c '^JobId='; }

# job FILE NAME RANKS STEPS: batch 64, 50 steps an epoch, a checkpoint every 10 steps.
job() {
  cat > "$1" <<JOB
{ "name": "$2",
  "dataset": { "name": "fashion-mnist", "trainLimit": 3200, "testLimit": 200 },
  "model": { "preset": "cnn-small" },
  "training": { "epochs": 10, "maxSteps": $4, "batchSize": 64, "logEverySteps": 5, "checkpoint": { "everySteps": 10 } },
  "resources": { "ranks": $3, "threadsPerRank": 1 } }
JOB
}

# ---- 1. one rank and two ranks, through Slurm
job "$work/one.json" slurm-one 1 20
job "$work/two.json" slurm-two 2 20
one=$(cli submit "$work/one.json")
check "1: submit prints a job id" [ -n "$one" ]
wait_for 60 state_is "$one" SUCCEEDED
check "1: the 1-rank job SUCCEEDED through Slurm" state_is "$one" SUCCEEDED || fail_dump
check "1: it ran on 1 rank" [ "$(job_json "$one" "j.get('ranks')")" = 1 ]
sid_one=$(slurm_id "$one")
check "1: prelude get shows its Slurm job id" bash -c "[[ '$sid_one' =~ ^[0-9]+$ ]] && '$CLIENT' get '$one' | grep -q 'Slurm job *$sid_one'"
check "1: the batch script asked Slurm for 1 task" grep -q -- '--ntasks=1' "$work/sl/$one.sbatch"
two=$(cli submit "$work/two.json")
wait_for 60 state_is "$two" SUCCEEDED
check "1: the 2-rank job SUCCEEDED through Slurm" state_is "$two" SUCCEEDED || fail_dump
check "1: it ran on 2 ranks" [ "$(job_json "$two" "j.get('ranks')")" = 2 ]
check "1: its batch job ran 2 tasks under srun --mpi=pmix" \
  bash -c "grep -q -- '--ntasks=2' '$work/sl/$two.sbatch' && grep -q 'srun --mpi=pmix' '$work/sl/$two.sbatch'"
queue_empty() { [ -z "$(squeue -h -o %i 2>/dev/null)" ]; }
wait_for 15 queue_empty
check "1: each job's Slurm job has left the queue" queue_empty

# ---- 2. a job pending in Slurm behind a 2-rank job that holds both CPUs
job "$work/long.json" slurm-long 2 70
long=$(cli submit "$work/long.json")
wait_for 60 state_is "$long" RUNNING || { echo "the long job did not start"; fail_dump; }
pend=$(cli submit "$work/one.json")
reason_is_slurms() { job_json "$pend" "j.get('waitingReason', '')" | grep -qE '^Slurm: (Resources|Priority)'; }
wait_for 20 reason_is_slurms
check "2: the pending job's waiting reason is Slurm's" reason_is_slurms || job_json "$pend" "j"
check "2: prelude get shows it" bash -c "'$CLIENT' get '$pend' | grep -qE 'Slurm: (Resources|Priority)'"
sid_pend=$(slurm_id "$pend")
check "2: squeue lists it as PENDING" [ "$(squeue -h -j "$sid_pend" -o %T 2>/dev/null)" = PENDING ]
cli cancel "$pend" > /dev/null
not_in_squeue() { ! in_squeue "$1"; }
wait_for 15 not_in_squeue "$sid_pend"
check "2: prelude cancel ended its Slurm job (squeue no longer lists it)" not_in_squeue "$sid_pend"
check "2: the job is CANCELLED" state_is "$pend" CANCELLED

# ---- 3. an outside scancel of the running job: requeued, resumed, SUCCEEDED
wait_for 60 checkpoint_at_least "$long" 20 || { echo "no checkpoint"; fail_dump; }
sid_long=$(slurm_id "$long")
scancel "$sid_long"
requeued() { [ "$(submissions "$long")" -ge 2 ]; }
wait_for 30 requeued
check "3: after the outside scancel the job was submitted to Slurm again" requeued
check "3: as a new Slurm job" [ "$(slurm_id "$long")" != "$sid_long" ]
wait_for 90 state_is "$long" SUCCEEDED
check "3: the job SUCCEEDED" state_is "$long" SUCCEEDED || fail_dump
cli metrics "$long" --format json > "$work/long.jsonl" 2> /dev/null
check "3: its second attempt resumed from a checkpoint" grep -q '"resumed"' "$work/long.jsonl"
check "3: two attempts" [ "$(job_json "$long" "j.get('attempts')")" = 2 ]
check "3: the requeue names Slurm's end of the job" \
  grep -q "$long QUEUED: Slurm job $sid_long ended (CANCELLED" "$work/coord.log"

# ---- 4. a coordinator restart re-attaches to the running job's Slurm job
job "$work/restart.json" slurm-restart 1 60
again=$(cli submit "$work/restart.json")
wait_for 60 checkpoint_at_least "$again" 10 || { echo "the job did not checkpoint"; fail_dump; }
sid_again=$(slurm_id "$again")
seen_before=$(slurm_jobs_seen)
sbatch_before=$(grep -c 'submitted to Slurm as job' "$work/coord.log")
kill -TERM "$coord"; wait_for 15 bash -c "! kill -0 $coord 2>/dev/null"
check "4: the Slurm job outlives the coordinator" in_squeue "$sid_again"
start_coordinator "${PRELUDE_COORDINATOR##*:}"
wait_for 90 state_is "$again" SUCCEEDED
check "4: the job SUCCEEDED after the restart" state_is "$again" SUCCEEDED || fail_dump
check "4: on the same Slurm job" [ "$(slurm_id "$again")" = "$sid_again" ]
check "4: submitted once" [ "$(submissions "$again")" = 1 ]
check "4: no sbatch after the restart" [ "$(grep -c 'submitted to Slurm as job' "$work/coord.log")" = "$sbatch_before" ]
check "4: Slurm saw no new job" [ "$(slurm_jobs_seen)" = "$seen_before" ]
check "4: the coordinator said it re-attached" grep -q "$again: watching its Slurm job $sid_again again" "$work/coord.log"
cli metrics "$again" --format json > "$work/again.jsonl" 2> /dev/null
check "4: the worker took the job back and resumed it" grep -q '"resumed"' "$work/again.jsonl"

# ---- 5. a TLS coordinator: its batch jobs' workers dial it with --pool-tls-ca
if command -v openssl > /dev/null && "$SRC/scripts/dev-certs.sh" "$work/certs" > /dev/null 2>&1; then
  kill -TERM "$coord"; wait_for 15 bash -c "! kill -0 $coord 2>/dev/null"
  extra=(--tls-cert "$work/certs/server.pem" --tls-key "$work/certs/server.key" --pool-tls-ca "$work/certs/ca.pem")
  start_coordinator
  export PRELUDE_TLS_CA=$work/certs/ca.pem
  job "$work/tls.json" slurm-tls 1 20
  tls_job=$(cli submit "$work/tls.json")
  check "5: a TLS coordinator takes a job" [ -n "$tls_job" ]
  wait_for 90 state_is "$tls_job" SUCCEEDED
  check "5: the job SUCCEEDED through Slurm over TLS" state_is "$tls_job" SUCCEEDED || fail_dump
  check "5: its batch script gave the workers the CA" grep -q -- "--tls-ca '$work/certs/ca.pem'" "$work/sl/$tls_job.sbatch"
  unset PRELUDE_TLS_CA
else
  echo "skipped 5, because openssl or scripts/dev-certs.sh could not make certificates"
fi

echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
