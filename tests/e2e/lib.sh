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
