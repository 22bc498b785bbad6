#!/usr/bin/python3
"""deploy/k8s checked offline (a ctest: k8s_manifests).

  k8s_manifests_test.py COORDINATOR WORKER SOURCE_DIR

Well-formed YAML; the fields the Kubeflow MPI Operator's MPIJob v2beta1 requires and
accepts (kubeflow/mpi-operator pkg/apis/kubeflow/v2beta1/types.go and its validation);
and that the manifests agree with deploy/Dockerfile (image targets, uid, ports, volume,
sshd) and with the programs (every flag in an args list is one the program knows; the
coordinator starts with the Deployment's own arguments; its gRPC health service, which
the probes call, answers SERVING without a token as the kubelet's probe sends none).
"""
import os
import re
import subprocess
import sys
import tempfile
import time

import grpc
import yaml

coordinator_bin, worker_bin, src = sys.argv[1:4]
k8s = os.path.join(src, "deploy", "k8s")
failures = 0


def check(what, ok, detail=""):
    global failures
    print(("ok   " if ok else "FAIL ") + what + ("" if ok or not detail else ": " + detail))
    failures += 0 if ok else 1
    return ok


# --- YAML -----------------------------------------------------------------------
docs = {}  # (kind, name) -> document
kustomization = None
for fname in sorted(os.listdir(k8s)):
    if not fname.endswith(".yaml"):
        continue
    path = os.path.join(k8s, fname)
    try:
        loaded = [d for d in yaml.safe_load_all(open(path)) if d is not None]
    except yaml.YAMLError as e:
        check(f"{fname} is well-formed YAML", False, str(e))
        continue
    check(f"{fname} is well-formed YAML ({len(loaded)} objects)", bool(loaded))
    for d in loaded:
        if not check(f"{fname}: {d.get('kind')} has apiVersion, kind and metadata.name",
                     isinstance(d, dict) and all(k in d for k in ("apiVersion", "kind"))
                     and (d["kind"] == "Kustomization" or d.get("metadata", {}).get("name"))):
            continue
        if d["kind"] == "Kustomization":
            kustomization = d
        else:
            docs[(d["kind"], d["metadata"]["name"])] = (fname, d)

check("kustomization.yaml is a Kustomization", kustomization is not None)
kustomization = kustomization or {}
for r in kustomization.get("resources", []):
    check(f"kustomization resource {r} exists", os.path.isfile(os.path.join(k8s, r)))
listed = set(kustomization.get("resources", []))
check("every manifest is a kustomization resource",
      {f for f, _ in docs.values()} <= listed, f"{ {f for f, _ in docs.values()} - listed }")
gitignore = open(os.path.join(k8s, ".gitignore")).read().split() if os.path.exists(os.path.join(k8s, ".gitignore")) else []
generated = {}  # secret name -> {key: file}
for g in kustomization.get("secretGenerator", []):
    generated[g["name"]] = dict(f.split("=", 1) for f in g.get("files", []))
    for f in generated[g["name"]].values():
        check(f"secret file {f} is git-ignored (never committed)", f.split("/")[0] + "/" in gitignore)
check("secret names are fixed (disableNameSuffixHash), as the MPIJob refers to them",
      kustomization.get("generatorOptions", {}).get("disableNameSuffixHash") is True)


def get(kind, name):
    entry = docs.get((kind, name))
    check(f"there is a {kind} {name}", entry is not None)
    return entry[1] if entry else {}


# --- the Dockerfile's facts -----------------------------------------------------------
dockerfile = open(os.path.join(src, "deploy", "Dockerfile")).read()
stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile, re.M)
uid = int(re.search(r"useradd [^\n]*--uid (\d+)", dockerfile).group(1))
home = re.search(r"--home-dir (\S+)", dockerfile).group(1)
expose = int(re.search(r"^EXPOSE (\d+)", dockerfile, re.M).group(1))
volume = re.search(r'^VOLUME \["([^"]+)"\]', dockerfile, re.M).group(1)
sshd_port = int(re.search(r"Port (\d+)\\nPidFile", dockerfile).group(1))
sshd_config = re.search(r"> (\S+/\.sshd_config)", dockerfile).group(1)
image_names = {i["name"] for i in kustomization.get("images", [])}
for name in image_names:
    check(f"image {name} is a target of deploy/Dockerfile", name.removeprefix("prelude-") in stages and name.startswith("prelude-"))


def containers(pod_spec):
    return pod_spec.get("containers", [])


def flags_of(program, *sub):
    out = subprocess.run([program, *sub, "--help"], capture_output=True, text=True)
    return set(re.findall(r"(--[a-z][a-z-]+)", out.stdout + out.stderr))


def check_pod(what, spec, image):
    sc = spec.get("securityContext", {})
    check(f"{what}: runs as uid {uid} (the image's user), not root",
          sc.get("runAsUser") == uid and sc.get("runAsNonRoot") is True, str(sc))
    for c in containers(spec):
        check(f"{what}: container {c['name']} uses image {image}", c.get("image") == image, c.get("image"))


# --- the coordinator ------------------------------------------------------------
dep = get("Deployment", "prelude-coordinator")
svc = get("Service", "prelude-coordinator")
pvc = get("PersistentVolumeClaim", "prelude-data")
dspec = dep.get("spec", {})
check("Deployment: 1 replica, Recreate (one coordinator on its database)",
      dspec.get("replicas") == 1 and dspec.get("strategy", {}).get("type") == "Recreate")
check("Deployment: its selector matches its pods' labels",
      dspec.get("selector", {}).get("matchLabels", {}).items() <= dspec.get("template", {}).get("metadata", {}).get("labels", {}).items())
check("Service: selects the coordinator's pods",
      svc.get("spec", {}).get("selector", {}).items() <= dspec.get("template", {}).get("metadata", {}).get("labels", {}).items())
pod = dspec.get("template", {}).get("spec", {})
check_pod("coordinator pod", pod, "prelude-coordinator")
coord = containers(pod)[0] if containers(pod) else {}
args = coord.get("args", [])
known = flags_of(coordinator_bin)
for a in args:
    if a.startswith("--"):
        check(f"coordinator flag {a} exists (prelude-coordinator --help)", a in known)
argv = dict(zip(args[::2], args[1::2]))
listen_port = int(argv.get("--listen", ":0").rsplit(":", 1)[1])
ports = {p["name"]: p["containerPort"] for p in coord.get("ports", [])}
check(f"--listen port {listen_port} = containerPort grpc = the Dockerfile's EXPOSE {expose}",
      listen_port == ports.get("grpc") == expose, f"{ports}")
check("--listen is 0.0.0.0 (reachable through the Service)", argv.get("--listen", "").startswith("0.0.0.0:"))
sport = (svc.get("spec", {}).get("ports") or [{}])[0]
check("Service port 50051 targets the grpc port", sport.get("port") == listen_port and sport.get("targetPort") in ("grpc", listen_port))
for probe in ("readinessProbe", "livenessProbe"):
    p = coord.get(probe, {})
    check(f"{probe} calls the gRPC health service on the coordinator's port", p.get("grpc", {}).get("port") == listen_port, str(p))
mounts = {m["name"]: m["mountPath"] for m in coord.get("volumeMounts", [])}
vols = {v["name"]: v for v in pod.get("volumes", [])}
check(f"the volume is mounted at the Dockerfile's VOLUME {volume}", mounts.get("data") == volume)
check("the volume is the PersistentVolumeClaim prelude-data",
      vols.get("data", {}).get("persistentVolumeClaim", {}).get("claimName") == pvc.get("metadata", {}).get("name"))
check("--db is on the volume", argv.get("--db", "").startswith(volume + "/"))
tok_secret = vols.get("tokens", {}).get("secret", {}).get("secretName")
check("the tokens Secret is one the kustomization makes", tok_secret in generated, str(tok_secret))
check("--tokens-file is the Secret's key in its mount",
      argv.get("--tokens-file") in {mounts.get("tokens", "") + "/" + k for k in generated.get(tok_secret, {})})

# --- the pool as an MPIJob (v2beta1) ------------------------------------------------
job = get("MPIJob", "prelude-pool")
check("MPIJob apiVersion is kubeflow.org/v2beta1", job.get("apiVersion") == "kubeflow.org/v2beta1")
jspec = job.get("spec", {})
# MPIJobSpec's fields (types.go); anything else is dropped by the CRD's schema.
spec_fields = {"slotsPerWorker", "runPolicy", "mpiReplicaSpecs", "sshAuthMountPath", "launcherCreationPolicy",
               "mpiImplementation", "runLauncherAsWorker"}
check("MPIJob spec has only MPIJobSpec's fields", set(jspec) <= spec_fields, str(set(jspec) - spec_fields))
check("MPIJob spec.mpiReplicaSpecs (required) has Launcher and Worker only",
      set(jspec.get("mpiReplicaSpecs", {})) == {"Launcher", "Worker"})
slots = jspec.get("slotsPerWorker", 1)
check("slotsPerWorker is a whole number >= 1", isinstance(slots, int) and slots >= 1)
check("mpiImplementation is OpenMPI (the image's MPI)", jspec.get("mpiImplementation", "OpenMPI") == "OpenMPI")
rp = jspec.get("runPolicy", {})
rp_fields = {"cleanPodPolicy", "ttlSecondsAfterFinished", "activeDeadlineSeconds", "backoffLimit", "schedulingPolicy",
             "suspend", "managedBy"}
check("runPolicy has only RunPolicy's fields", set(rp) <= rp_fields, str(set(rp) - rp_fields))
check("runPolicy.cleanPodPolicy is All, Running or None", rp.get("cleanPodPolicy", "Running") in ("All", "Running", "None"))
check(f"sshAuthMountPath is the image user's ~/.ssh ({home}/.ssh)", jspec.get("sshAuthMountPath") == home + "/.ssh")
replicas = jspec.get("mpiReplicaSpecs", {})
launcher, worker = replicas.get("Launcher", {}), replicas.get("Worker", {})
replica_fields = {"replicas", "template", "restartPolicy"}
for name, r in (("Launcher", launcher), ("Worker", worker)):
    check(f"{name} has only ReplicaSpec's fields", set(r) <= replica_fields, str(set(r) - replica_fields))
    check(f"{name} restartPolicy is Always, OnFailure, Never or ExitCode",
          r.get("restartPolicy", "Never") in ("Always", "OnFailure", "Never", "ExitCode"))
    check(f"{name} has a pod template with a container", bool(containers(r.get("template", {}).get("spec", {}))))
    check_pod(f"{name} pod", r.get("template", {}).get("spec", {}), "prelude-worker")
check("exactly one Launcher (the validation's rule)", launcher.get("replicas") == 1)
check("Worker replicas >= 1", isinstance(worker.get("replicas"), int) and worker.get("replicas") >= 1)
lc = (containers(launcher.get("template", {}).get("spec", {})) or [{}])[0]
largv = lc.get("command", []) + lc.get("args", [])
check("the launcher runs mpirun", largv[:1] == ["mpirun"])
np_ = int(largv[largv.index("-np") + 1]) if "-np" in largv else None
check("mpirun -np = Worker replicas x slotsPerWorker", np_ == worker.get("replicas", 0) * slots, f"-np {np_}")
serve = largv[largv.index("prelude-worker"):] if "prelude-worker" in largv else []
check("mpirun starts `prelude-worker serve`", serve[:2] == ["prelude-worker", "serve"])
wknown = flags_of(worker_bin, "serve")
for a in serve[2:]:
    if a.startswith("--"):
        check(f"worker flag {a} exists (prelude-worker serve --help)", a in wknown)
sargv = dict(zip(serve[2::2], serve[3::2]))
check("the pool dials the Service by name and port",
      sargv.get("--coordinator") == f"{svc.get('metadata', {}).get('name')}:{sport.get('port')}", sargv.get("--coordinator"))
wpod = worker.get("template", {}).get("spec", {})
wc = (containers(wpod) or [{}])[0]
check(f"workers run the image's sshd with its config ({sshd_config})",
      wc.get("command", [])[:1] == ["/usr/sbin/sshd"] and sshd_config in wc.get("command", []))
check(f"the workers' ssh port is the image's sshd port {sshd_port}",
      {p.get("containerPort") for p in wc.get("ports", [])} == {sshd_port})
wmounts = {m["name"]: m["mountPath"] for m in wc.get("volumeMounts", [])}
wvols = {v["name"]: v for v in wpod.get("volumes", [])}
pool_secret = wvols.get("pool-token", {}).get("secret", {}).get("secretName")
check("the pool token Secret is one the kustomization makes", pool_secret in generated, str(pool_secret))
check("--token-file is that Secret's key, mounted on the workers (where rank 0 runs)",
      sargv.get("--token-file") in {wmounts.get("pool-token", "") + "/" + k for k in generated.get(pool_secret, {})})
check("--data-root is the image's data set directory",
      sargv.get("--data-root") == re.search(r"PRELUDE_DATA_ROOT=(\S+)", dockerfile).group(1))

# --- the coordinator, started with the Deployment's arguments ------------------------
with tempfile.TemporaryDirectory() as tmp:
    tokens = os.path.join(tmp, "tokens")
    subprocess.run([coordinator_bin, "token", "add", "pool-1", "--role", "pool", "--tokens-file", tokens],
                   capture_output=True, check=True)
    # The manifest's arguments, with its paths moved under tmp and the port picked by the kernel.
    run_args = []
    for flag, value in argv.items():
        if flag == "--listen":
            value = "127.0.0.1:0"
        elif flag == "--tokens-file":
            value = tokens
        elif flag == "--db":
            value = os.path.join(tmp, os.path.basename(value))
        run_args += [flag, value]
    port_file = os.path.join(tmp, "port")
    proc = subprocess.Popen([coordinator_bin, *run_args, "--port-file", port_file, "--http", ""],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "log"), "w"))
    try:
        for _ in range(100):
            if os.path.exists(port_file) and open(port_file).read().strip() or proc.poll() is not None:
                break
            time.sleep(0.1)
        started = check("the coordinator starts with the Deployment's arguments", proc.poll() is None,
                        open(os.path.join(tmp, "log")).read())
        if started:
            port = int(open(port_file).read())
            with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                # grpc.health.v1.Health/Check, HealthCheckRequest{service: ""} = no bytes;
                # HealthCheckResponse{status: SERVING (1)} = field 1, varint 1.
                check_call = ch.unary_unary("/grpc.health.v1.Health/Check")
                try:
                    reply = check_call(b"", timeout=10)
                except grpc.RpcError as e:
                    reply = f"{e.code().name}: {e.details()}"
                check("its gRPC health service answers SERVING without a token (what the probes see)",
                      reply == b"\x08\x01", repr(reply))
                try:
                    ch.unary_unary("/prelude.v1.JobService/ListJobs")(b"", timeout=10)
                    refused = "answered"
                except grpc.RpcError as e:
                    refused = e.code().name
                check("while the job service refuses a call without a token", refused == "UNAUTHENTICATED", refused)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

print(f"k8s manifests: {failures} problem(s)")
sys.exit(1 if failures else 0)
