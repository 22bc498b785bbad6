#!/usr/bin/env bash
# The main job, end to end: install what is missing, build, start the coordinator
# with a local worker pool of 2 MPI ranks, submit the default job
# (examples/jobs/fmnist-prelu.json: cnn-small, channel-wise PReLU, Kaiming, 3 epochs
# of Fashion-MNIST) and watch it to the end. The coordinator stops when the job ends;
# its database (jobs and metrics) stays in build/main.db:
#   build/server/prelude-coordinator --db build/main.db   (then: build/client/prelude list)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
build="${PRELUDE_BUILD_DIR:-build}"
job="${1:-examples/jobs/fmnist-prelu.json}"

portfile=$(mktemp)
setsid "$build/server/prelude-coordinator" --listen 127.0.0.1:0 --port-file "$portfile" \
  --db "$build/main.db" --spawn-workers 2 2> "$build/coordinator.log" &
coordinator=$!
trap 'kill -TERM -- -$coordinator 2>/dev/null; wait $coordinator 2>/dev/null; rm -f "$portfile"' EXIT
for _ in $(seq 100); do [[ -s "$portfile" ]] && break; sleep 0.1; done
[[ -s "$portfile" ]] || { cat "$build/coordinator.log"; exit 1; }
export PRELUDE_COORDINATOR="127.0.0.1:$(cat "$portfile")"
echo "coordinator at $PRELUDE_COORDINATOR with a local pool of 2 ranks (log: $build/coordinator.log)" >&2

prelude="$build/client/prelude"
id=$("$prelude" submit "$job")
status=0
"$prelude" watch "$id" || status=$?
"$prelude" get "$id"    # final metrics and the learned slopes per layer
exit $status
