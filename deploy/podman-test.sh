#!/usr/bin/env bash
# The images of deploy/Dockerfile, run for real with podman (a ctest: containers_podman).
#
#   deploy/podman-test.sh COORDINATOR WORKER CLIENT [SOURCE_DIR]
#
# COORDINATOR, WORKER and CLIENT are the host's built prelude-coordinator, prelude-worker
# and prelude. The images are built from them (--build-context binaries=DIR: compiling
# inside the image takes minutes, see deploy/README.md), on a debian:12 base image made
# here offline from Debian's archive with debootstrap when podman has none (kept for the
# next run). Then: a podman network, the coordinator on a volume with its port published
# on the host's loopback, a 2-rank pool, the token as a podman secret in both; a job
# submitted by the host's client through the published port, watched to SUCCEEDED; the
# coordinator container removed and a new one started on the same volume, which still
# has the job, its metrics and its model. Everything made here but the images is removed
# on exit, by name.
#
# Exit 77 (ctest: skipped) when this machine cannot run containers, saying why.
# PRELUDE_PODMAN_KEEP=1 keeps the containers and the work directory for a look.
set -uo pipefail
if (($# < 3)); then echo "usage: $0 COORDINATOR WORKER CLIENT [SOURCE_DIR]" >&2; exit 2; fi
coordinator_bin=$1 worker_bin=$2 client=$3
src=${4:-$(cd "$(dirname "$0")/.." && pwd)}
started=$SECONDS

skip() { echo "skipped, because $*"; exit 77; }
command -v podman > /dev/null || skip "podman is not installed (scripts/install-deps.sh installs it)"

work=$(mktemp -d)
# This test's own containers.conf, so the host's /etc/containers is left as it is:
#  - runtime runc: crun refuses a cgroup v1 (hybrid) host such as this one, runc does not;
#  - default_ulimits = []: podman's default sets RLIMIT_NOFILE, which an unprivileged
#    container host (a container itself) does not permit.
# A host whose containers.conf says otherwise is overridden only for this test.
{
  echo '[containers]'
  echo 'default_ulimits = []'
  if command -v runc > /dev/null; then printf '[engine]\nruntime = "runc"\n'; fi
} > "$work/containers.conf"
export CONTAINERS_CONF=$work/containers.conf

name=prelude-test-$$
coord=$name-coordinator pool=$name-pool net=$name-net vol=$name-db secret=$name-token
cleanup() {
  if [[ -n ${PRELUDE_PODMAN_KEEP:-} ]]; then echo "kept: containers $coord $pool, network $net, volume $vol, secret $secret, $work"; return; fi
  podman rm -f -t 2 "$coord" "$pool" > /dev/null 2>&1
  podman network rm -f "$net" > /dev/null 2>&1
  podman volume rm -f "$vol" > /dev/null 2>&1
  podman secret rm "$secret" > /dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

failures=0 passes=0
check() {  # check NAME CONDITION-COMMAND...
  local what=$1; shift
  if "$@"; then passes=$((passes + 1)); echo "ok   $what"; else failures=$((failures + 1)); echo "FAIL $what"; fi
}
fatal() {  # a step the rest depends on failed: show the logs and stop
  echo "FAIL $*"
  for c in "$coord" "$pool"; do
    podman container exists "$c" 2>/dev/null && { echo "--- podman logs $c"; podman logs --tail 40 "$c" 2>&1; }
  done
  exit 1
}
elapsed() { echo "$((SECONDS - started)) s"; }

# --- the base image: docker.io/library/debian:12, made offline when missing ---------
base=docker.io/library/debian:12
if ! podman image exists "$base"; then
  command -v debootstrap > /dev/null || skip "podman has no $base image and debootstrap is not installed to make one"
  [[ $(id -u) -eq 0 ]] || skip "podman has no $base image and debootstrap needs root to make one"
  mirror=$(awk '$1 == "URIs:" { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
  mirror=${mirror:-http://deb.debian.org/debian}
  echo "making $base with debootstrap from $mirror (once; kept for the next runs)"
  if ! debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" > "$work/debootstrap.log" 2>&1; then
    tail -5 "$work/debootstrap.log"
    skip "debootstrap could not make a Debian 12 root file system from $mirror (log above)"
  fi
  # Downloaded packages and lists are not part of a base image (the official one has neither).
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/cache/apt/*.bin "$work"/rootfs/var/lib/apt/lists/*
  tar -C "$work/rootfs" -c . | podman import - "$base" > /dev/null || fatal "podman import of the debootstrap tree"
  rm -rf "$work/rootfs"
  echo "made $base ($(elapsed))"
fi
if ! out=$(podman run --rm --network none "$base" true 2>&1); then
  skip "podman cannot run a container here: $out"
fi

# --- the images, from the host's programs ---------------------------------------------
# The host's programs replace the Dockerfile's `binaries` stage (its build stage is not run).
mkdir -p "$work/bin"
if ! { cp "$coordinator_bin" "$work/bin/prelude-coordinator" && cp "$worker_bin" "$work/bin/prelude-worker" &&
        cp "$client" "$work/bin/prelude"; }; then
  fatal "copying the programs to $work/bin"
fi
for target in coordinator worker; do
  t0=$SECONDS
  if ! podman build --network host -f "$src/deploy/Dockerfile" --ignorefile "$src/deploy/Dockerfile.dockerignore" \
       --build-context "binaries=$work/bin" --target "$target" -t "prelude-$target:latest" "$src" \
       > "$work/build-$target.log" 2>&1; then
    tail -30 "$work/build-$target.log"
    fatal "podman build --target $target (log above)"
  fi
  echo "built prelude-$target:latest in $((SECONDS - t0)) s, $(podman image inspect --format '{{.Size}}' "prelude-$target:latest" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
done

# The runtime image: every library the programs link resolves, and nothing to compile with.
check "every shared library of the three programs resolves in the image" \
  podman run --rm --network none --entrypoint sh prelude-coordinator:latest -c \
    '! ldd /usr/local/bin/prelude-coordinator /usr/local/bin/prelude-worker /usr/local/bin/prelude | grep "not found"'
check "the runtime image has no compiler and no headers" \
  podman run --rm --network none --entrypoint sh prelude-worker:latest -c \
    '! command -v gcc g++ cc c++ clang > /dev/null && [ ! -e /usr/include/grpcpp ] && [ ! -e /usr/include/oneapi ]'
check "the coordinator image carries no data set; the worker image carries Fashion-MNIST" \
  bash -c "podman run --rm --network none --entrypoint sh prelude-coordinator:latest -c '[ ! -e /usr/share/datasets ]' &&
           podman run --rm --network none --entrypoint sh prelude-worker:latest -c \
             'ls /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte*' > /dev/null"
check "the images run as uid 10001 (prelude)" \
  test "$(podman run --rm --network none --entrypoint id prelude-worker:latest -u)" = 10001

# --- network, volume, token ---------------------------------------------------------
podman network create "$net" > /dev/null || fatal "podman network create $net"
podman volume create "$vol" > /dev/null || fatal "podman volume create $vol"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/token" && echo >> "$work/token"
podman secret create "$secret" "$work/token" > /dev/null || fatal "podman secret create $secret"
# The secret as compose gives it: /run/secrets/prelude_token, readable by the images' user only.
secret_mount=("--secret" "$secret,type=mount,target=prelude_token,uid=10001,mode=0400")

host_port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cli=("$client" --coordinator "127.0.0.1:$host_port" --token-file "$work/token")

run_coordinator() {  # [--ip IP]: the coordinator container, on the volume
  podman run -d --name "$coord" --network "$net" "$@" -p "127.0.0.1:$host_port:50051" \
    -v "$vol:/var/lib/prelude" "${secret_mount[@]}" prelude-coordinator:latest \
    --listen 0.0.0.0:50051 --db /var/lib/prelude/prelude.db \
    --token-file /run/secrets/prelude_token > /dev/null
}
wait_ready() {  # until the host's client reaches the coordinator through the published port
  for _ in $(seq 1 60); do
    "${cli[@]}" list --limit 1 > /dev/null 2>&1 && return 0
    [[ $(podman inspect --format '{{.State.Running}}' "$coord" 2>/dev/null) == true ]] || return 1
    sleep 0.5
  done
  return 1
}
run_coordinator || fatal "podman run $coord"
wait_ready || fatal "the coordinator container did not answer on 127.0.0.1:$host_port"
check "the coordinator's log names the address it listens on (0.0.0.0:50051)" \
  bash -c "podman logs '$coord' 2>&1 | grep -q 'serving on 0.0.0.0:50051 .*tokens required'"
check "a call without the token is refused (UNAUTHENTICATED)" \
  bash -c "'$client' --coordinator 127.0.0.1:$host_port list 2>&1 | grep -q UNAUTHENTICATED"

# The pool reaches the coordinator as `coordinator:50051`, the name compose uses. This
# podman's CNI network may have no DNS plugin (dnsname), so the name is also given as a
# host entry, to an address the coordinator keeps when it is re-created (--ip below).
coord_ip=$(podman inspect --format "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" "$coord")
[[ -n $coord_ip ]] || fatal "no address of $coord on $net"
podman run -d --name "$pool" --network "$net" --add-host "coordinator:$coord_ip" --shm-size 256m \
  -e PRELUDE_RANKS=2 "${secret_mount[@]}" prelude-worker:latest \
  --coordinator coordinator:50051 --token-file /run/secrets/prelude_token > /dev/null || fatal "podman run $pool"

# --- a job from the host, through the published port -----------------------------
job=$("${cli[@]}" submit "$src/examples/jobs/quick.json") || fatal "submit examples/jobs/quick.json"
echo "submitted $job ($(elapsed))"
if ! timeout 180 "${cli[@]}" watch "$job" > "$work/watch.log" 2>&1; then
  tail -5 "$work/watch.log"
  fatal "$job did not succeed (watch above)"
fi
check "$job SUCCEEDED on the 2-rank pool container" \
  bash -c "'${cli[0]}' --coordinator 127.0.0.1:$host_port --token-file '$work/token' get '$job' --format json | grep -q '\"state\": \"SUCCEEDED\"'"
check "the pool that trained it has 2 ranks" \
  bash -c "podman logs '$pool' 2>&1 | grep -q 'prelude-pool: 2 ranks'"
"${cli[@]}" metrics "$job" > "$work/metrics-before.csv" 2>/dev/null
"${cli[@]}" download "$job" -o "$work/model-before.ckpt" 2>/dev/null
check "its metrics have rows (steps and a summary)" bash -c "grep -c '^step,' '$work/metrics-before.csv' | grep -qv '^0$' && grep -q '^summary,' '$work/metrics-before.csv'"
check "its model downloads (DownloadModel)" test -s "$work/model-before.ckpt"
rate=$(awk -F, '$1 == "summary" { print $NF }' "$work/metrics-before.csv" | tail -1)
echo "training speed in containers: ${rate:-?} images/s"

# --- a new coordinator container on the same volume ---------------------------------
podman rm -f -t 10 "$coord" > /dev/null || fatal "podman rm $coord"
run_coordinator --ip "$coord_ip" || fatal "podman run $coord (again, on $vol)"
wait_ready || fatal "the re-created coordinator did not answer"
check "after the coordinator's re-creation on its volume, $job is still SUCCEEDED" \
  bash -c "'${cli[0]}' --coordinator 127.0.0.1:$host_port --token-file '$work/token' get '$job' --format json | grep -q '\"state\": \"SUCCEEDED\"'"
"${cli[@]}" metrics "$job" > "$work/metrics-after.csv" 2>/dev/null
"${cli[@]}" download "$job" -o "$work/model-after.ckpt" 2>/dev/null
check "its metrics are the same" cmp -s "$work/metrics-before.csv" "$work/metrics-after.csv"
check "its model is the same, byte for byte" cmp -s "$work/model-before.ckpt" "$work/model-after.ckpt"
# The pool finds the coordinator again (it re-registers) and trains a second job.
# A short job (20 steps) this time: what matters is that the pool is back.
sed 's/"maxSteps": 100/"maxSteps": 20/; s/"trainLimit": 6400/"trainLimit": 1280/' "$src/examples/jobs/quick.json" > "$work/short.json"
job2=$("${cli[@]}" submit "$work/short.json") || fatal "submit after the re-creation"
check "the same pool container trains $job2 after the coordinator came back" \
  bash -c "timeout 180 '${cli[0]}' --coordinator 127.0.0.1:$host_port --token-file '$work/token' watch '$job2' > /dev/null 2>&1"

# --- the Kubernetes manifest's coordinator, with `podman kube play` --------------------
# deploy/k8s/coordinator.yaml as it is (Deployment, PersistentVolumeClaim; podman ignores
# the Service), under this test's names: its pod, volume and tokens secret would
# otherwise take the manifest's fixed ones. podman publishes the containerPort, 50051,
# on the host; a pool container dials the pod on the podman network.
kube_play() {
  local kube=$name-kube tokens=$name-tokens data=$name-data
  if ! command -v catatonit > /dev/null; then echo "skip kube play: catatonit (podman's pod init) is not installed"; return; fi
  if ! /usr/bin/python3 -c 'import socket; socket.create_server(("0.0.0.0", 50051)).close()' 2> /dev/null; then
    echo "skip kube play: port 50051, which the manifest's pod publishes, is taken on this host"; return
  fi
  sed -e "s/prelude-data/$data/g; s/prelude-tokens/$tokens/g; s/name: prelude-coordinator\$/name: $kube/" \
    "$src/deploy/k8s/coordinator.yaml" > "$work/kube.yaml"
  if ! { "$coordinator_bin" token add admin --role admin --tokens-file "$work/kube-tokens" > "$work/kube-admin" 2> /dev/null &&
          "$coordinator_bin" token add pool-1 --role pool --tokens-file "$work/kube-tokens" > "$work/kube-pool" 2> /dev/null; }; then
    fatal "token add for the kube play tokens file"
  fi
  # podman 4.3 keeps a Secret volume's `data` as given (no base64), so the file goes in as text.
  /usr/bin/python3 - "$work/kube-tokens" "$tokens" > "$work/kube-secret.yaml" << 'PY'
import json, sys
print(json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": sys.argv[2]},
                  "data": {"tokens": open(sys.argv[1]).read()}}))
PY
  podman secret create "$tokens" "$work/kube-secret.yaml" > /dev/null || fatal "podman secret create $tokens"
  # kube play also makes a volume named after the secret.
  kube_cleanup="podman pod rm -f -t 2 $kube-pod-0; podman rm -f -t 2 $kube-pool; podman volume rm -f $data $tokens; podman secret rm $tokens"
  if ! podman kube play --network "$net" "$work/kube.yaml" > "$work/kube-play.log" 2>&1; then
    grep -v '^\s' "$work/kube-play.log" | tail -5
    check "podman kube play deploy/k8s/coordinator.yaml" false; return
  fi
  local kcli=("$client" --coordinator 127.0.0.1:50051 --token-file "$work/kube-admin") ok=false
  for _ in $(seq 1 60); do "${kcli[@]}" list --limit 1 > /dev/null 2>&1 && { ok=true; break; }; sleep 0.5; done
  check "podman kube play runs the manifest's coordinator, which answers with its tokens file" $ok
  $ok || { podman logs "$kube-pod-0-coordinator" 2>&1 | tail -5; return; }
  local ip
  ip=$(podman inspect --format "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" \
         "$(podman pod inspect --format '{{.InfraContainerID}}' "$kube-pod-0")")
  podman secret create "$name-kube-pool-token" "$work/kube-pool" > /dev/null
  kube_cleanup+="; podman secret rm $name-kube-pool-token"
  podman run -d --name "$kube-pool" --network "$net" --add-host "prelude-coordinator:$ip" --shm-size 256m \
    --secret "$name-kube-pool-token,type=mount,target=prelude_token,uid=10001,mode=0400" prelude-worker:latest \
    --coordinator prelude-coordinator:50051 --token-file /run/secrets/prelude_token > /dev/null
  local kjob
  kjob=$("${kcli[@]}" submit "$work/short.json") || { check "submit to the kube play coordinator" false; return; }
  check "a job submitted to it is trained by a pool with the manifest's pool role ($kjob SUCCEEDED)" \
    bash -c "timeout 180 '$client' --coordinator 127.0.0.1:50051 --token-file '$work/kube-admin' watch '$kjob' > /dev/null 2>&1"
}
kube_cleanup=""
trap 'if [[ -n $kube_cleanup && -z ${PRELUDE_PODMAN_KEEP:-} ]]; then eval "$kube_cleanup" > /dev/null 2>&1; fi; cleanup' EXIT
kube_play

echo "$passes passed, $failures failed ($(elapsed))"
((failures == 0))
