#!/usr/bin/env bash
# The fuzz targets of tests/fuzz: built with clang++ and libFuzzer (ASan + UBSan) in a
# build directory of their own, and run by ctest (the fuzz_* tests).
#   run_fuzz.sh build   SOURCE_DIR FUZZ_BUILD_DIR   configure and build the targets
#   run_fuzz.sh regress SOURCE_DIR FUZZ_BUILD_DIR   run every input of the committed corpus
#                                                   (seeds and fixed crashes) once
#   run_fuzz.sh fuzz    SOURCE_DIR FUZZ_BUILD_DIR   fuzz each target for PRELUDE_FUZZ_SECONDS
#                                                   (default 20) from the committed corpus
#   run_fuzz.sh seeds   SOURCE_DIR FUZZ_BUILD_DIR   rewrite the corpus's seed-* files
# PRELUDE_FUZZ_TARGETS="fuzz_idx fuzz_checkpoint" limits a run to those targets.
# Exit status: 0 all well, 1 a finding (its input and how to reproduce it are
# printed) or a failed build, 77 skipped (no clang++ or no libFuzzer here).
set -uo pipefail

mode=${1:?usage: run_fuzz.sh build|regress|fuzz|seeds SOURCE_DIR FUZZ_BUILD_DIR}
src=$(cd "${2:?source dir}" && pwd)
out=${3:?fuzz build dir}
mkdir -p "$out"
out=$(cd "$out" && pwd)
corpus=$src/tests/fuzz/corpus
seconds=${PRELUDE_FUZZ_SECONDS:-20}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$src}

skip() {
  echo "skipped, because $*"
  exit 77
}

# clang++ that can link a libFuzzer binary with the sanitizers (Debian: the clang and
# libclang-rt-*-dev packages, see scripts/install-deps.sh).
check_toolchain() {
  command -v clang++ >/dev/null || skip "clang++ is not installed (scripts/install-deps.sh installs it)"
  local probe=$out/probe
  mkdir -p "$probe"
  printf '%s\n' '#include <cstddef>' '#include <cstdint>' \
    'extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }' >"$probe/probe.cc"
  clang++ -fsanitize=fuzzer,address,undefined "$probe/probe.cc" -o "$probe/probe" 2>"$probe/log" ||
    skip "clang++ cannot link a libFuzzer target with ASan and UBSan (libclang-rt-*-dev missing?): $(head -c 300 "$probe/log")"
}

targets() {
  if [[ -n "${PRELUDE_FUZZ_TARGETS:-}" ]]; then
    echo "$PRELUDE_FUZZ_TARGETS"
  else
    (cd "$src/tests/fuzz" && ls fuzz_*.cc | sed 's/\.cc$//')
  fi
}

# Configures and builds, one at a time (ctest may start the fuzz tests together).
build() {
  check_toolchain
  local launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  (
    flock 9
    if [[ ! -f "$out/CMakeCache.txt" ]]; then
      cmake -S "$src/tests/fuzz" -B "$out" -DCMAKE_CXX_COMPILER=clang++ "${launcher[@]}" >"$out/configure.log" 2>&1 ||
        { cat "$out/configure.log"; exit 1; }
    fi
    cmake --build "$out" -j2 >"$out/build.log" 2>&1 || { tail -50 "$out/build.log"; exit 1; }
  ) 9>"$out/.lock"
}

# Sanitizer settings: every report is fatal and names where it happened.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:symbolize=1}

# The target's own options: the longest input worth trying, and a dictionary.
options_of() {
  case "$1" in
    fuzz_job_json | fuzz_sweep_json) echo "-max_len=4096 -dict=$src/tests/fuzz/json.dict" ;;
    fuzz_spec_proto) echo "-max_len=4096" ;;
    fuzz_idx) echo "-max_len=2048" ;;
    fuzz_checkpoint) echo "-max_len=8192" ;;
    *) echo "" ;;
  esac
}

# A finding: the input, and how to run it again.
report_finding() {
  local target=$1 log=$2 input
  echo "FAIL: $target found a problem; its report:"
  grep -v '^#[0-9]\|^INFO:\|^\s*$\|^\[libprotobuf' "$log" | head -60
  for input in $(grep -o 'Test unit written to [^ ]*' "$log" | awk '{print $5}' | sort -u); do
    echo "the input ($input, $(stat -c %s "$input") bytes; first 512 as hex):"
    xxd "$input" | head -32
    echo "reproduce: $out/$target $input"
    echo "keep it as a regression input once fixed: cp $input $corpus/$target/regress-<what>"
  done
}

regress() {
  local status=0 target files log
  for target in $(targets); do
    mapfile -t files < <(find "$corpus/$target" -type f | sort)
    if ((${#files[@]} == 0)); then
      echo "FAIL: $target has no corpus in $corpus/$target"
      status=1
      continue
    fi
    log=$out/$target.regress.log
    if "$out/$target" -artifact_prefix="$out/$target-" "${files[@]}" >"$log" 2>&1; then
      echo "ok: $target ran ${#files[@]} corpus inputs"
    else
      report_finding "$target" "$log"
      status=1
    fi
  done
  return $status
}

fuzz() {
  local status=0 target log scratch
  for target in $(targets); do
    # New inputs go to a scratch corpus in the build directory; the committed one is read only.
    scratch=$out/corpus/$target
    mkdir -p "$scratch"
    log=$out/$target.fuzz.log
    # shellcheck disable=SC2046
    if "$out/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$out/$target-" $(options_of "$target") "$scratch" "$corpus/$target" >"$log" 2>&1; then
      # "#123456 DONE cov: 789 ft: 1011 corp: 12/3456b ..." and the final stats.
      local done_line execs rate
      done_line=$(grep -E '^#[0-9]+\s+DONE' "$log" | tail -1)
      execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
      rate=$(awk '/stat::average_exec_per_sec/ {print $2}' "$log")
      echo "ok: $target ${seconds}s: $execs runs, $rate/s; $(echo "$done_line" | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+')"
    else
      report_finding "$target" "$log"
      status=1
    fi
  done
  return $status
}

case "$mode" in
  build) build && echo "built: $(targets | tr '\n' ' ')" ;;
  regress) build && regress ;;
  fuzz) build && fuzz ;;
  seeds) build && "$out/make_seeds" "$src" && echo "wrote $corpus/*/seed-*" ;;
  *)
    echo "run_fuzz.sh: unknown mode '$mode' (build, regress, fuzz or seeds)" >&2
    exit 2
    ;;
esac
