#!/usr/bin/env bash
# The main job, end to end: install what is missing, build, and train the default
# job (examples/jobs/fmnist-prelu.json: cnn-small, channel-wise PReLU, Kaiming,
# 3 epochs of Fashion-MNIST). JSON events on stdout, progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec "${PRELUDE_BUILD_DIR:-build}/worker/prelude-worker" run "${1:-examples/jobs/fmnist-prelu.json}"
