#!/usr/bin/env bash
# Ranks across hosts (issue 14), with network namespaces as hosts: a switch namespace
# holds a bridge; the coordinator (C, 10.77.0.1), and hosts H1, H2, H3 (.2, .3, .4)
# are namespaces of their own, each with loopback and one cable to the bridge, no
# route beyond it (scripts/netns-hosts.sh). Pool A is one MPI world whose rank 0 is
# on H1 and rank 1 on H2: mpirun on H1 starts its daemons through scripts/netns-rsh.sh
# (ip netns exec, where real hosts use ssh) and the ranks talk over TCP only
# (--mca btl tcp,self). Pool B is 2 ranks on H3 (shared memory), started later.
#  1. Pool A trains a job to SUCCEEDED; its ranks were in H1 and H2, joined by TCP;
#     its losses (every step), test accuracy and loss and learned slopes equal those of
#     the same job trained by `prelude-worker run` with 2 ranks on one host, exactly.
#  2. The same job again; once it has a checkpoint, pool B starts, and H2's rank is
#     SIGKILLed: pool A's world goes down, the coordinator requeues the job, pool B
#     takes it, resumes from the checkpoint and it SUCCEEDS with those same numbers.
# Uses tokens (a pool token and a user token), not --insecure.
#
#   hosts_e2e_test.sh COORDINATOR WORKER CLIENT SOURCE_DIR
set -uo pipefail
COORD=$1 WORKER=$2 CLIENT=$3 SRC=$4
PY=/usr/bin/python3
NETNS=$SRC/scripts/netns-hosts.sh RSH=$SRC/scripts/netns-rsh.sh
skip() { echo "skipped, because $*"; exit 77; }
[[ $(id -u) -eq 0 ]] || skip "network namespaces need root (ip netns add)"
command -v ip > /dev/null || skip "there is no 'ip' (iproute2)"
command -v mpirun > /dev/null || skip "there is no mpirun"
command -v ss > /dev/null || skip "there is no 'ss' (iproute2) to see the ranks' TCP connections"
[[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]] || skip "Fashion-MNIST is not installed"

# Unique names (several runs may overlap); a run killed before its trap ran left
# namespaces named after its pid: those of dead pids are taken down first.
tag=plh$$
NET=${tag}net C=${tag}c H1=${tag}h1 H2=${tag}h2 H3=${tag}h3
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^plh[0-9]+(net|c|h[0-9])$'); do
  old=${ns#plh}; old=${old%%[a-z]*}
  [[ -e /proc/$old ]] || { "$NETNS" down "$ns" 2> /dev/null; rm -rf /tmp/ompi."$ns".*; }
done

source "$(dirname "$0")/lib.sh"
# OpenMPI's session directories are named after the host: /tmp/ompi.HOST.* are ours.
trap 'cleanup; "$NETNS" down "$C" "$H1" "$H2" "$H3" "$NET"; rm -rf /tmp/ompi."$tag"*' EXIT
trap 'exit 1' INT TERM
fail_dump() { for log in "$work"/*.log; do echo "--- $log"; tail -30 "$log"; done; }

"$NETNS" up "$NET" 10.77.0 "$C" "$H1" "$H2" "$H3" > "$work/hosts.txt" 2> "$work/netns.log" ||
  skip "network namespaces cannot be made here: $(tail -1 "$work/netns.log")"
on() { "$NETNS" run "$@"; }  # on HOST COMMAND...: run it on that host (its network, its host name)

tokens=$work/tokens
"$COORD" token add pools --role pool --tokens-file "$tokens" > "$work/pool.token" 2> "$work/token.log" &&
  "$COORD" token add alice --role user --tokens-file "$tokens" > "$work/alice.token" 2>> "$work/token.log" ||
  { echo "token add failed"; cat "$work/token.log"; exit 1; }

# The coordinator listens on C's address only; setsid makes it a group leader that
# cleanup can end (`netns-hosts.sh run` replaces itself with the command: same pid).
setsid "$NETNS" run "$C" "$COORD" --listen 10.77.0.1:0 --port-file "$work/port" --db "$work/jobs.db" \
  --tokens-file "$tokens" --heartbeat-timeout 3 --max-attempts 3 > "$work/coord.log" 2>&1 &
pids+=($!); disown
for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.1; done
[[ -s "$work/port" ]] || { echo "coordinator did not start"; fail_dump; exit 1; }
port=$(cat "$work/port")
ADDR=10.77.0.1:$port
# The client runs on C (where else could it reach C's address from?).
cli() { on "$C" "$CLIENT" --coordinator "$ADDR" --token-file "$work/alice.token" "$@"; }

check "hosts: a host reaches the coordinator at C's address" \
  bash -c "'$NETNS' run '$H1' '$CLIENT' --coordinator $ADDR --token-file '$work/alice.token' --timeout 5 list > /dev/null 2>&1"
check "hosts: a host does not reach it on its own loopback (separate network stacks)" \
  bash -c "! '$NETNS' run '$H1' '$CLIENT' --coordinator 127.0.0.1:$port --timeout 2 list > /dev/null 2>&1"

# Pool A: rank 0 on H1, rank 1 on H2, TCP between them on the hosts' subnet only.
MPI=(mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1)
setsid "$NETNS" run "$H1" "${MPI[@]}" --mca plm_rsh_agent "$RSH" --host "$H1,$H2" -np 2 \
  --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 \
  "$WORKER" serve --coordinator "$ADDR" --token-file "$work/pool.token" --threads 1 --quiet > "$work/poolA.log" 2>&1 &
poolA=$!; pids+=("$poolA"); disown

# 50 steps of batch 64, a checkpoint every 10.
cat > "$work/job.json" <<'JOB'
{ "name": "e2e-hosts",
  "dataset": { "name": "fashion-mnist", "trainLimit": 3200, "testLimit": 500 },
  "model": { "preset": "cnn-small", "activation": { "kind": "PRELU_CHANNELWISE" } },
  "training": { "epochs": 1, "batchSize": 64, "logEverySteps": 5, "checkpoint": { "everySteps": 10 } } }
JOB

# The processes of HOST named NAME.
procs_on() { local q; for q in $(ip netns pids "$1" 2>/dev/null); do [[ $(cat "/proc/$q/comm" 2>/dev/null) == "$2" ]] && echo "$q"; done; }
rank_of() { tr '\0' '\n' < "/proc/$1/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p'; }

# ---- 1. a job whose ranks span H1 and H2
id=$(cli submit "$work/job.json")
check "1: submit prints a job id" [ -n "$id" ]
wait_for 60 state_is "$id" RUNNING || { echo "the job did not start"; fail_dump; exit 1; }
r0=$(procs_on "$H1" prelude-worker) r1=$(procs_on "$H2" prelude-worker)
check "1: rank 0 runs on H1, rank 1 on H2" bash -c "[ '$(rank_of "$r0")' = 0 ] && [ '$(rank_of "$r1")' = 1 ]"
# Rank 1 on H2 holds a TCP connection to rank 0's host H1 (10.77.0.2): MPI's own.
on "$H2" ss -tnpH state established > "$work/ss-h2.txt"
check "1: the ranks are joined by TCP between H2 and H1" \
  grep -qE "10\.77\.0\.3:[0-9]+ +10\.77\.0\.2:[0-9]+ .*prelude-worker" "$work/ss-h2.txt"
wait_for 120 state_is "$id" SUCCEEDED
check "1: the job ends SUCCEEDED" state_is "$id" SUCCEEDED
check "1: it ran on 2 ranks" [ "$(job_json "$id" "j.get('ranks')")" = 2 ]
cli metrics "$id" --format json > "$work/span.jsonl"

# The same job on one host, 2 ranks over shared memory, outside the service.
# (In the background: a TERM to this script is acted on at once, not after it.)
"${MPI[@]}" -np 2 "$WORKER" run "$work/job.json" --threads 1 --quiet > "$work/one.jsonl" 2> "$work/one.log" &
wait $!
check "the same job on one host trains" grep -q '"summary"' "$work/one.jsonl"
# numbers FILE: every step's loss, then the summary's losses, accuracies and slopes.
numbers() {
  "$PY" - "$1" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
steps = {}
for e in events:  # a resumed run reports steps again: the last report of a step wins
    if e.get("event") == "step":
        steps[e["step"]] = e["loss"]
for step in sorted(steps):
    print("step", step, repr(steps[step]))
s = [e for e in events if e.get("event") == "summary"][-1]
for k in ("steps", "train_loss", "train_accuracy", "test_loss", "test_accuracy"):
    print(k, repr(s[k]))
for a in s["alphas"]:
    print("slopes", a["layer"], *[repr(v) for v in a["values"]])
PY
}
numbers "$work/one.jsonl" > "$work/one.numbers"
numbers "$work/span.jsonl" > "$work/span.numbers"
grep -E '^(test_accuracy|test_loss)' "$work/span.numbers" | tr '\n' ' '; echo "(ranks on H1 and H2)"
grep -E '^(test_accuracy|test_loss)' "$work/one.numbers" | tr '\n' ' '; echo "(one host, shared memory)"
check "1: losses, accuracies and slopes equal those on one host, exactly" cmp -s "$work/one.numbers" "$work/span.numbers"
check "1: ... 10 step losses and the slopes of 5 layers compared" \
  bash -c "[ \$(grep -c '^step ' '$work/one.numbers') = 10 ] && [ \$(grep -c '^slopes ' '$work/one.numbers') = 5 ]"

# ---- 2. H2's rank killed: the job moves to pool B on H3 and resumes there
id2=$(cli submit "$work/job.json")
wait_for 60 state_is "$id2" RUNNING || { echo "the second job did not start"; fail_dump; exit 1; }
poolA_id=$(job_json "$id2" "j.get('poolId', '')")
setsid "$NETNS" run "$H3" "${MPI[@]}" -np 2 \
  "$WORKER" serve --coordinator "$ADDR" --token-file "$work/pool.token" --threads 1 --quiet > "$work/poolB.log" 2>&1 &
poolB=$!; pids+=("$poolB"); disown
wait_for 60 checkpoint_at_least "$id2" 20 || { echo "no checkpoint at step 20"; fail_dump; exit 1; }
r1=$(procs_on "$H2" prelude-worker)
[[ -n $r1 ]] || { echo "no rank on H2"; fail_dump; exit 1; }
echo "2: SIGKILL rank 1 (pid $r1, on H2) after the checkpoint of step $(job_json "$id2" \
  "max(int(c.get('step', 0)) for c in j.get('checkpoints', []))"), at step $(job_json "$id2" "j.get('progress', {}).get('step')")"
kill -KILL "$r1"
check "2: pool A's whole world goes down (its mpirun on H1 exits)" wait_for 30 bash -c "! kill -0 $poolA 2>/dev/null"
wait_for 90 state_is "$id2" SUCCEEDED
check "2: the job ends SUCCEEDED" state_is "$id2" SUCCEEDED
check "2: it took two attempts" [ "$(job_json "$id2" "j.get('attempts')")" = 2 ]
check "2: the coordinator saw it start on pool A's H1, then on pool B's H3" \
  bash -c "grep '$id2 RUNNING' '$work/coord.log' | sed 's/.*(//' | tr '\n' ' ' | grep -qx '2 ranks on $H1) 2 ranks on $H3) '"
check "2: the second ran on another pool" bash -c "[ -n '$poolA_id' ] && [ '$(job_json "$id2" "j.get('poolId', '')")' != '$poolA_id' ]"
cli metrics "$id2" --attempt all --format json > "$work/moved.jsonl"
check "2: it resumed from a checkpoint (step >= 20)" "$PY" -c "
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if '\"resumed\"' in l]
sys.exit(0 if len(r) == 1 and r[0]['step'] >= 20 and r[0]['step'] % 10 == 0 else 1)" "$work/moved.jsonl"
numbers "$work/moved.jsonl" > "$work/moved.numbers"
check "2: and ends with the same numbers as on one host, exactly" cmp -s "$work/one.numbers" "$work/moved.numbers"

# Pool B is ended gently, so its mpirun removes its session directory.
kill -TERM -- "-$poolB" 2> /dev/null
wait_for 10 bash -c "! kill -0 $poolB 2>/dev/null"
echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]] || { fail_dump; exit 1; }
