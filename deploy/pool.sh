#!/bin/sh
# prelude-pool: runs one worker pool, i.e. one MPI world of $PRELUDE_RANKS ranks on
# this host, whose rank 0 serves the coordinator. Installed in the images as
# /usr/local/bin/prelude-pool; its arguments go to `prelude-worker serve`:
#
#   PRELUDE_RANKS=2 prelude-pool --coordinator coordinator:50051 --token-file /run/secrets/prelude_token
#
# mpirun flags, for a container:
#   --allow-run-as-root  only when running as root (the images run as `prelude`)
#   --oversubscribe      allow more ranks than cores (as the tests and bench do); it
#                        lifts mpirun's slot check only: unbound ranks stay where the
#                        kernel puts them
#   --bind-to none       the container's cgroup decides the CPUs, not OpenMPI
#   -x OMP_NUM_THREADS   oneDNN threads per rank: $OMP_NUM_THREADS if set, else the
#                        CPUs divided among the ranks (1 when ranks share cores)
set -eu

ranks="${PRELUDE_RANKS:-2}"
case "$ranks" in
  '' | *[!0-9]* | 0*) echo "prelude-pool: PRELUDE_RANKS must be a whole number >= 1, got '$ranks'" >&2; exit 2 ;;
esac
cpus="$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)"  # nproc itself obeys OMP_NUM_THREADS
threads="${OMP_NUM_THREADS:-$((cpus / ranks))}"
[ "$threads" -ge 1 ] || threads=1

root=""
[ "$(id -u)" -ne 0 ] || root="--allow-run-as-root"

echo "prelude-pool: $ranks ranks x $threads threads on $cpus CPUs" >&2
# shellcheck disable=SC2086  # $root is empty or one word
exec mpirun $root --oversubscribe --bind-to none -np "$ranks" -x OMP_NUM_THREADS="$threads" \
  prelude-worker serve "$@"
