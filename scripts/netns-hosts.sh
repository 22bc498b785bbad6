#!/usr/bin/env bash
# Network namespaces as hosts, to run a pool's ranks "across hosts" on one machine
# (MPI over TCP, as between real hosts) and to test it.
#
#   scripts/netns-hosts.sh up   NET SUBNET HOST...   e.g. up pl42 10.77.0 pl42c pl42h1 pl42h2
#   scripts/netns-hosts.sh down NET HOST...
#   scripts/netns-hosts.sh run  HOST COMMAND...      COMMAND on HOST, under the host name HOST
#
# `up` makes namespace NET holding bridge br0 (the switch), and one namespace per HOST
# with loopback and eth0, wired to the bridge, at SUBNET.1, SUBNET.2, ... (/24) in
# the order given; it prints "HOST ADDRESS" per host. The hosts have no route beyond
# that subnet and the machine's own namespace gets no interface at all: a host reaches
# only the other hosts' addresses and its own loopback. Nothing is created outside
# the namespaces, so several NETs can coexist (give them other names and subnets).
#
# `down` ends every process still inside those namespaces (by pid, TERM then KILL)
# and deletes them; deleting NET deletes the bridge and every cable. It is quiet
# about namespaces that do not exist, so it can run from a trap.
#
# `run` is what scripts/netns-rsh.sh does for mpirun: COMMAND in HOST's network
# namespace and a UTS namespace of its own named HOST (so OpenMPI's session
# directories, /tmp/ompi.HOST.*, and the pool's host name differ per host).
#
# Needs root (or CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2's `ip`.
set -euo pipefail

usage() { sed -n '5,7p' "$0" | sed 's/^# *//' >&2; exit 2; }
die() { echo "netns-hosts: $*" >&2; exit 1; }

kill_inside() {  # kill_inside NS...: every process in the namespaces, TERM, then KILL
  local ns pids=() p
  for ns in "$@"; do
    [[ -e /run/netns/$ns ]] || continue
    for p in $(ip netns pids "$ns" 2>/dev/null); do pids+=("$p"); done
  done
  ((${#pids[@]})) || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 20); do  # up to 2 s for them to go
    local left=0
    for p in "${pids[@]}"; do [[ -e /proc/$p ]] && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null && left=1; done
    ((left)) || return 0
    sleep 0.1
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
}

down() {  # down NET HOST...
  kill_inside "$@"
  local ns
  for ns in "$@"; do [[ -e /run/netns/$ns ]] && ip netns del "$ns" 2>/dev/null; done
  return 0
}

cmd=${1:-}; shift || true
case "$cmd" in
  up)
    (($# >= 3)) || usage
    net=$1 subnet=$2; shift 2
    [[ $subnet =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "SUBNET must be three octets like 10.77.0, got '$subnet'"
    (($# <= 250)) || die "at most 250 hosts on one /24"
    for name in "$net" "$@"; do
      [[ $name =~ ^[A-Za-z0-9_.-]{1,40}$ ]] || die "namespace name '$name' must be 1-40 letters, digits, '.', '_' or '-'"
      [[ ! -e /run/netns/$name ]] || die "namespace '$name' exists already (another NET's? run down first)"
    done
    command -v ip > /dev/null || die "no 'ip' (iproute2) on PATH"
    # Half-made networks are taken down again.
    trap 'down "$net" "$@"' ERR
    ip netns add "$net"
    ip -n "$net" link set lo up
    ip -n "$net" link add br0 type bridge
    ip -n "$net" link set br0 up
    i=0
    for host in "$@"; do
      i=$((i + 1))
      ip netns add "$host"
      ip -n "$host" link set lo up
      # Made inside the namespaces: no name is ever taken in the machine's own.
      ip -n "$net" link add "p$i" type veth peer name eth0 netns "$host"
      ip -n "$net" link set "p$i" master br0
      ip -n "$net" link set "p$i" up
      ip -n "$host" addr add "$subnet.$i/24" dev eth0
      ip -n "$host" link set eth0 up
      echo "$host $subnet.$i"
    done
    trap - ERR
    ;;
  down)
    (($# >= 1)) || usage
    down "$@"
    ;;
  run)
    (($# >= 2)) || usage
    host=$1; shift
    [[ -e /run/netns/$host ]] || die "no network namespace named '$host'"
    exec ip netns exec "$host" unshare --uts /bin/sh -c 'hostname "$0" && exec "$@"' "$host" "$@"
    ;;
  *) usage ;;
esac
