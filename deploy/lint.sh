#!/usr/bin/env bash
# Checks deploy/ without a Docker engine. Exits non-zero on any problem.
#
#   deploy/lint.sh             run every check whose tool is here, skip the others
#   deploy/lint.sh --install   first install the tools: docker-compose and shellcheck
#                              (apt), dockerfile-utils (npm, into ~/.cache/prelude-lint)
#
# Checks:
#   1. compose.yaml validates (`docker compose config`, or Debian's docker-compose v1),
#      and its build targets are stages of the Dockerfile
#   2. the Dockerfile parses (dockerfile-utils lint, the VS Code Docker linter), uses
#      only debian:12 (and scratch for the programs alone), installs apt packages
#      with --no-install-recommends and cleans the lists, and its final stages run as
#      a non-root USER
#   3. every apt package of every stage exists in Debian 12 and each stage's set
#      installs (apt-get simulation against an empty system, from Debian's archive)
#   4. the build context (Dockerfile.dockerignore) keeps what the build needs and
#      drops .git, build trees and deploy/secrets
#   5. the runtime libraries: any built prelude-coordinator, prelude-worker and
#      prelude (in $PRELUDE_BUILD_DIR, default build/; or the files named in
#      $PRELUDE_LINT_BINARIES) resolve every shared library, and each one belongs
#      to a package that the runtime stage installs
#   6. pool.sh and this script pass sh -n / bash -n and shellcheck
set -uo pipefail
deploy="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$deploy")"
cd "$root" || exit 1
dockerfile=deploy/Dockerfile
cache="${XDG_CACHE_HOME:-$HOME/.cache}/prelude-lint"
PY=/usr/bin/python3; [[ -x $PY ]] || PY=python3

failures=0
ok()   { echo "ok    $*"; }
skip() { echo "skip  $*"; }
fail() { echo "FAIL  $*"; failures=$((failures + 1)); }

if [[ "${1:-}" == "--install" ]]; then
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends docker-compose shellcheck
  mkdir -p "$cache" && npm install --prefix "$cache" --no-audit --no-fund --silent dockerfile-utils@0.16
fi

# The Dockerfile as logical instructions (continuations joined), one per line.
instructions() { sed -e 's/[[:space:]]*#.*$//' "$dockerfile" | awk '/\\$/ { sub(/\\$/, ""); buf = buf $0 " "; next } { print buf $0; buf = "" }' | grep -v '^[[:space:]]*$'; }
stages() { instructions | awk 'toupper($1) == "FROM" && toupper($3) == "AS" { print $4 }'; }

# 1. compose
if docker compose version > /dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
if command -v "${compose[0]}" > /dev/null && "${compose[@]}" version > /dev/null 2>&1; then
  if out=$("${compose[@]}" -f deploy/compose.yaml config -q 2>&1); then ok "compose.yaml: ${compose[*]} config"
  else fail "compose.yaml: ${compose[*]} config: $out"; fi
else
  skip "compose.yaml: neither 'docker compose' nor docker-compose here (deploy/lint.sh --install)"
fi
while read -r _ target; do
  if stages | grep -qx "$target"; then ok "compose.yaml: build target '$target' is a Dockerfile stage"
  else fail "compose.yaml: build target '$target' is not a stage of $dockerfile"; fi
done < <(grep -E '^[[:space:]]+target:' deploy/compose.yaml)

# 2. Dockerfile syntax and conventions
dfu=$(command -v dockerfile-utils || echo "$cache/node_modules/.bin/dockerfile-utils")
if [[ -x $dfu ]]; then
  if out=$("$dfu" lint "$dockerfile" 2>&1); then ok "Dockerfile: dockerfile-utils lint"
  else fail "Dockerfile: dockerfile-utils lint:"$'\n'"$out"; fi
else
  skip "Dockerfile: dockerfile-utils not installed (deploy/lint.sh --install)"
fi
# scratch: the `binaries` stage holds the three programs alone.
while read -r _ image _; do
  if [[ $image == debian:12 || $image == scratch ]] || stages | grep -qx "$image"; then :
  else fail "Dockerfile: FROM $image: only debian:12, scratch or an earlier stage"; fi
done < <(instructions | awk 'toupper($1) == "FROM"')
while IFS= read -r run; do
  for need in "apt-get update" "-y" "--no-install-recommends" "rm -rf /var/lib/apt/lists/"; do
    [[ $run == *" $need"* ]] || fail "Dockerfile: an apt-get install RUN lacks '$need'"
  done
done < <(instructions | grep -E '^RUN .*apt-get install')
for final in worker coordinator; do
  user=$(instructions | awk -v s="$final" 'toupper($1) == "FROM" { cur = $4 } cur == s && toupper($1) == "USER" { u = $2 } END { print u }')
  if [[ -n $user && $user != root && $user != 0 ]]; then ok "Dockerfile: stage $final runs as '$user'"
  else fail "Dockerfile: stage $final has no non-root USER"; fi
done

# 3. apt packages of each stage: they exist and install together, from Debian
stage_packages() {  # the packages after `apt-get install` in one stage
  instructions | awk -v s="$1" 'toupper($1) == "FROM" { cur = $4 } cur == s && /apt-get install/ {
      sub(/.*apt-get install/, ""); sub(/&&.*/, ""); for (i = 1; i <= NF; i++) if ($i !~ /^-/) print $i }'
}
if command -v apt-get > /dev/null; then
  [[ -n $(find /var/lib/apt/lists -name '*Packages*' -print -quit 2>/dev/null) ]] || echo "note  no apt lists: run apt-get update first"
  for stage in $(stages); do
    mapfile -t pkgs < <(stage_packages "$stage")
    ((${#pkgs[@]})) || continue
    policy=$(apt-cache policy "${pkgs[@]}" 2>/dev/null)
    missing=()
    for p in "${pkgs[@]}"; do
      awk -v p="$p:" '$0 == p { on = 1; next } /^[^ ]/ { on = 0 } on && $1 == "Candidate:" && $2 != "(none)" { found = 1 }
                      END { exit !found }' <<< "$policy" || missing+=("$p")
    done
    if ((${#missing[@]})); then fail "stage $stage: no such Debian package: ${missing[*]}"; continue; fi
    if ! sim=$(apt-get -s -o Dir::State::status=/dev/null install --no-install-recommends "${pkgs[@]}" 2>&1); then
      fail "stage $stage: the packages do not install together:"$'\n'"$sim"; continue
    fi
    foreign=$(grep '^Inst ' <<< "$sim" | grep -v 'Debian:12\|Debian-Security:12' || true)
    if [[ -n $foreign ]]; then fail "stage $stage: packages from outside Debian 12:"$'\n'"$foreign"; continue; fi
    ok "stage $stage: ${#pkgs[@]} apt packages exist and install together ($(grep -c '^Inst ' <<< "$sim") with dependencies)"
    [[ $stage == runtime ]] && runtime_closure=$(grep '^Inst ' <<< "$sim" | awk '{ print $2 }')
  done
else
  skip "apt packages: no apt-get here"
fi

# 4. the build context
if out=$("$PY" - "$deploy/Dockerfile.dockerignore" << 'EOF'
# Emulates the dockerignore rules (the last matching pattern wins; a pattern that
# matches a parent directory matches what is inside) over the repository's files.
import os, re, sys
def rx(p):
    p = p.strip("/")
    out = "".join(".*" if t == "**" else "[^/]*" if t == "*" else "[^/]" if t == "?" else re.escape(t)
                  for t in re.split(r"(\*\*|\*|\?)", p))
    return re.compile(out + "$")
rules = []
for line in open(sys.argv[1]):
    line = line.strip()
    if line and not line.startswith("#"):
        rules.append((line.startswith("!"), rx(line.lstrip("!"))))
def sent(path):
    parts, keep = path.split("/"), True
    for neg, r in rules:
        if any(r.match("/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            keep = neg
    return keep
files = []
for d, dirs, names in os.walk("."):
    dirs[:] = [x for x in dirs if x != ".git"]
    files += [os.path.relpath(os.path.join(d, n)) for n in names]
kept = {f for f in files if sent(f)}
bad = []
need = ["CMakeLists.txt", "deploy/pool.sh", "examples/jobs"]
need += re.findall(r"add_subdirectory\((\w+)\)", open("CMakeLists.txt").read())
for n in need:
    if not any(f == n or f.startswith(n + "/") for f in kept):
        bad.append(f"needed but not sent: {n}")
for n in [".git/HEAD", "build/CMakeCache.txt", "deploy/secrets/prelude_token", "deploy/README.md"]:
    if sent(n):
        bad.append(f"sent but should not be: {n}")
print("\n".join(bad) if bad else f"{len(kept)} of {len(files)} files sent")
sys.exit(1 if bad else 0)
EOF
); then ok "build context: $out"; else fail "build context (Dockerfile.dockerignore): $out"; fi

# 5. runtime libraries of built programs
if [[ -n ${PRELUDE_LINT_BINARIES:-} ]]; then
  read -ra bins <<< "$PRELUDE_LINT_BINARIES"
else
  mapfile -t bins < <(find "${PRELUDE_BUILD_DIR:-build}" -maxdepth 3 -type f \
    \( -name prelude-coordinator -o -name prelude-worker -o -name prelude \) -perm -u+x 2>/dev/null)
fi
if ((${#bins[@]} == 0)); then
  skip "runtime libraries: no built prelude-coordinator, prelude-worker or prelude in ${PRELUDE_BUILD_DIR:-build}/"
elif [[ -z ${runtime_closure:-} ]]; then
  skip "runtime libraries: the runtime stage's package set is unknown (check 3 did not run)"
else
  for bin in "${bins[@]}"; do
    libs=$(ldd "$bin" 2>&1)
    if grep -q 'not found' <<< "$libs"; then fail "$bin: unresolved libraries:"$'\n'"$(grep 'not found' <<< "$libs")"; continue; fi
    outside=()
    while read -r so; do
      real=$(readlink -f "$so")
      pkg=$(dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null || dpkg -S "/usr$real" 2>/dev/null)
      pkg=${pkg%%:*}
      if [[ -z $pkg ]]; then outside+=("$so(no package)")
      elif ! grep -qx "$pkg" <<< "$runtime_closure"; then outside+=("$so($pkg)"); fi
    done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 }' <<< "$libs")
    if ((${#outside[@]})); then fail "$bin: libraries the runtime stage does not install: ${outside[*]}"
    else ok "$bin: $(grep -c '=>' <<< "$libs") shared libraries, all from the runtime stage's packages"; fi
  done
fi

# 6. shell scripts
for script in deploy/pool.sh deploy/lint.sh deploy/podman-test.sh; do
  shell="sh"; [[ $script == *.sh && $script != */pool.sh ]] && shell="bash"
  if ! $shell -n "$script"; then fail "$script: $shell -n"; continue; fi
  if command -v shellcheck > /dev/null; then
    if out=$(shellcheck "$script" 2>&1); then ok "$script: shellcheck"; else fail "$script: shellcheck:"$'\n'"$out"; fi
  else
    ok "$script: $shell -n (shellcheck not installed)"
  fi
done

if ((failures)); then echo "deploy/lint.sh: $failures problem(s)"; exit 1; fi
echo "deploy/lint.sh: no problems"
