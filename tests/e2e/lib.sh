# Shared by the end-to-end tests (sourced): a work directory, the process groups
# they start (ended on exit, then the directory removed), and check NAME CMD...,
# which counts passes and failures.
work=${PRELUDE_E2E_WORK:-$(mktemp -d)}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null; done
  sleep 1
  for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null; done
  [[ -n ${PRELUDE_E2E_KEEP:-} ]] || rm -rf "$work"
}
trap cleanup EXIT
failures=0 passes=0
check() {  # check NAME CONDITION-COMMAND...
  local name=$1; shift
  if "$@"; then passes=$((passes + 1)); echo "ok   $name"; else failures=$((failures + 1)); echo "FAIL $name"; fi
}

# Jobs through the client. `cli` is the script's client command: "$CLIENT" unless the
# script defines its own (after sourcing this: a token, a host's namespace).
cli() { "$CLIENT" "$@"; }
# job_json ID EXPR: EXPR, Python over the job `cli get ID --format json` prints, as j.
job_json() { cli get "$1" --format json | /usr/bin/python3 -c "import json,sys; j=json.load(sys.stdin); print($2)"; }
state_is() { [ "$(job_json "$1" "j.get('state')")" = "$2" ]; }
# attempt_running ID N: the job runs its Nth attempt.
attempt_running() { [ "$(job_json "$1" "str(j.get('attempts', 0)) + ' ' + j.get('state')")" = "$2 RUNNING" ]; }
# checkpoint_at_least ID STEP: the job has kept a checkpoint of STEP or later.
checkpoint_at_least() { [ "$(job_json "$1" "max([int(c.get('step', 0)) for c in j.get('checkpoints', [])] or [0])")" -ge "$2" ]; }
# wait_for SECONDS COMMAND...: until the command succeeds, trying 5 times a second (so a
# loaded machine, where each try is slow, waits longer rather than failing sooner).
wait_for() {
  local t=$1; shift
  for _ in $(seq $((t * 5))); do "$@" && return 0; sleep 0.2; done
  return 1
}
