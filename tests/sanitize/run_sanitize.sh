#!/usr/bin/env bash
# The unit tests under AddressSanitizer (with LeakSanitizer) and UndefinedBehaviorSanitizer:
# a g++ build of their own (-DPRELUDE_SANITIZE=ON, see CMakeLists.txt) and every
# unit-test executable run once, whole. Driven by ctest (sanitize_build, sanitize_units).
#   run_sanitize.sh build SOURCE_DIR BUILD_DIR   configure and build only the unit tests
#   run_sanitize.sh run   SOURCE_DIR BUILD_DIR   run them (building first if needed)
# PRELUDE_SANITIZE_TESTS="test_idx test_store" limits a run to those executables;
# GTEST_FILTER works as usual. Exit status: 0 all well, 1 a finding (its report is
# printed) or a failed test or build, 77 skipped (g++ cannot link the sanitizers).
set -uo pipefail

mode=${1:?usage: run_sanitize.sh build|run SOURCE_DIR BUILD_DIR}
src=$(cd "${2:?source dir}" && pwd)
out=${3:?build dir}
mkdir -p "$out"
out=$(cd "$out" && pwd)
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$src}

skip() {
  echo "skipped, because $*"
  exit 77
}

check_toolchain() {
  local probe=$out/probe
  mkdir -p "$probe"
  printf '%s\n' 'int main() { return 0; }' >"$probe/probe.cc"
  g++ -fsanitize=address,undefined "$probe/probe.cc" -o "$probe/probe" 2>"$probe/log" ||
    skip "g++ cannot link with -fsanitize=address,undefined (libasan or libubsan missing?): $(head -c 300 "$probe/log")"
}

# Configures and builds, one at a time (ctest may start both tests together). Only the
# unit_tests target: no programs, benches or fuzz targets. The gtest executables are not
# run at build time to list their tests (PRE_TEST discovery): this script runs them.
build() {
  check_toolchain
  local launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  (
    flock 9
    if [[ ! -f "$out/CMakeCache.txt" ]]; then
      cmake -S "$src" -B "$out" -DCMAKE_BUILD_TYPE=Release -DPRELUDE_SANITIZE=ON -DPRELUDE_FUZZ=OFF \
        -DCMAKE_GTEST_DISCOVER_TESTS_DISCOVERY_MODE=PRE_TEST "${launcher[@]}" >"$out/configure.log" 2>&1 ||
        { cat "$out/configure.log"; exit 1; }
    fi
    local start=$SECONDS
    cmake --build "$out" -j2 --target unit_tests >"$out/build.log" 2>&1 || { tail -50 "$out/build.log"; exit 1; }
    echo "built $(wc -l <"$out/tests/unit_tests.txt") unit-test executables in $((SECONDS - start)) s"
  ) 9>"$out/.lock"
}

# Every finding is fatal and names where it happened. Leaks are checked at exit; the
# suppressions (tests/sanitize/lsan.supp) are third-party leaks only, each with its reason.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1:symbolize=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$src/tests/sanitize/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:symbolize=1}
# As ctest runs the unit tests (gtest_discover_tests' ENVIRONMENT, and the MPI ones' -x).
export PRELUDE_SOURCE_DIR=$src
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

wanted() {
  [[ -z "${PRELUDE_SANITIZE_TESTS:-}" ]] && return 0
  [[ " $PRELUDE_SANITIZE_TESTS " == *" $1 "* ]]
}

run() {
  local status=0 exe dir name log start passed=0 failed=()
  local total_start=$SECONDS
  while read -r exe dir ranks mpiexec; do
    name=$(basename "$exe")
    wanted "$name" || continue
    log=$out/$name.log
    start=$SECONDS
    local command=("$exe")
    if [[ -n "$ranks" ]]; then
      # As tests/mpi/CMakeLists.txt runs them. Open MPI is not built with frame pointers,
      # so only the slow unwinder gets the whole stack of what MPI_Init leaks, which the
      # suppressions need: here only, as it slows every malloc.
      command=("$mpiexec" --allow-run-as-root --oversubscribe -np "$ranks" -x OMP_NUM_THREADS -x PRELUDE_SOURCE_DIR
               -x ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0" -x LSAN_OPTIONS -x UBSAN_OPTIONS "$exe")
    fi
    # stdin from /dev/null: mpiexec would read the rest of the list.
    if (cd "$dir" && timeout 900 "${command[@]}") </dev/null >"$log" 2>&1; then
      echo "ok: $name ($(grep -oE '[0-9]+ tests? from [0-9]+ test suites? ran' "$log" | tail -1), $((SECONDS - start)) s)"
      passed=$((passed + 1))
    else
      echo "FAIL: $name ($((SECONDS - start)) s); $log:"
      # The sanitizer's report, else the failed tests, else the end of the log.
      if grep -qE '^==[0-9]+==ERROR|runtime error:' "$log"; then
        grep -A60 -m1 -E '^==[0-9]+==ERROR|runtime error:' "$log"
      elif grep -q '^\[  FAILED  \]' "$log"; then
        grep -B20 -m1 '^\[  FAILED  \]' "$log"
        grep '^\[  FAILED  \]' "$log" | sort -u
      else
        tail -40 "$log"
      fi
      echo "reproduce: cd $dir && ${command[*]}"
      failed+=("$name")
      status=1
    fi
  done <"$out/tests/unit_tests.txt"
  echo "$passed passed, ${#failed[@]} failed${failed:+ (${failed[*]})} in $((SECONDS - total_start)) s"
  return $status
}

case "$mode" in
  build) build ;;
  run) build && run ;;
  *)
    echo "run_sanitize.sh: unknown mode '$mode' (build or run)" >&2
    exit 2
    ;;
esac
