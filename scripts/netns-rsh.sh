#!/bin/sh
# OpenMPI's remote shell for namespace "hosts" (scripts/netns-hosts.sh): where mpirun
# would `ssh HOST COMMAND...` to start its daemon (orted) on HOST, this runs COMMAND
# inside the network namespace named HOST, under the host name HOST (a UTS namespace
# of its own: two daemons under one host name share a session directory in /tmp and
# race to make it, and rank 0 would register its pool under the machine's name). Like
# ssh, the words of COMMAND are joined and read by a shell, since mpirun may pass
# "VAR=...; export VAR; orted ..." as one.
#
#   mpirun --mca plm_rsh_agent scripts/netns-rsh.sh --host h1,h2 ...
#
# OpenMPI passes options of its own only to agents named ssh or rsh; any leading
# option (a word starting with '-') is skipped all the same.
while [ $# -gt 0 ]; do
  case "$1" in
    -*) shift ;;
    *) break ;;
  esac
done
if [ $# -lt 2 ]; then
  echo "netns-rsh: usage: netns-rsh.sh HOST COMMAND..." >&2
  exit 255
fi
host=$1
shift
if [ ! -e "/run/netns/$host" ]; then
  echo "netns-rsh: no network namespace named '$host' (see scripts/netns-hosts.sh)" >&2
  exit 255
fi
exec ip netns exec "$host" unshare --uts /bin/sh -c 'hostname "$0" && exec /bin/sh -c "$1"' "$host" "$*"
