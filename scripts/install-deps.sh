#!/usr/bin/env bash
# Installs the Debian 12 packages Prelude needs; skips what is already there.
#   scripts/install-deps.sh            build, test and run dependencies
#   (ocl-icd-opencl-dev: oneDNN's CMake config looks for OpenCL; apt only recommends it;
#    python3-onnx and python3-opencv check exported ONNX models in an independent runtime;
#    clang and libclang-rt-14-dev, libFuzzer and the sanitizers' runtime, build tests/fuzz;
#    openssl makes the certificates of scripts/dev-certs.sh and the TLS tests;
#    prometheus-cpp-dev and libcpp-httplib-dev serve the coordinator's /metrics, and
#    prometheus (the server, and promtool) scrapes and lints it in metrics_e2e;
#    chromium, headless, loads the coordinator's web dashboard in dashboard_e2e;
#    podman, runc, catatonit and debootstrap build and run deploy/'s images in containers_podman:
#    runc because crun refuses cgroup v1 hosts, catatonit as the init of the pods that
#    `podman kube play` makes, debootstrap to make the debian:12 base image from
#    Debian's archive without a registry;
#    slurmctld, slurmd, slurm-client and munge: prelude-coordinator --slurm submits jobs
#    with sbatch, and slurm_e2e starts a one-node Slurm of them (tests/slurm/start-slurm.sh))
#   scripts/install-deps.sh --torch    also python3-torch, for the side-by-side benchmark
set -euo pipefail

packages=(cmake g++ make pkg-config
          libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
          libdnnl-dev ocl-icd-opencl-dev libopenmpi-dev openmpi-bin libgtest-dev libsqlite3-dev zlib1g-dev libssl-dev libonnx-dev
          dataset-fashion-mnist python3-grpcio python3-grpc-tools openssl
          python3-onnx python3-opencv clang libclang-rt-14-dev
          prometheus-cpp-dev libcpp-httplib-dev prometheus chromium
          podman runc catatonit debootstrap
          slurmctld slurmd slurm-client munge)
if [[ "${1:-}" == "--torch" ]]; then packages+=(python3-torch); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
