#!/usr/bin/python3
"""A Prelude client in Python: the coordinator's public gRPC API, used directly.

    prelude_client.py [--coordinator ADDR] [--token T | --token-file F]
                      [--tls | --tls-ca F] [--tls-cert F --tls-key F] COMMAND
      submit JOB.json [--watch]   queue a job (protobuf JSON of prelude.v1.JobSpec)
      watch ID                    stream a job's events until it ends
      get ID                      print a job
      metrics ID [--attempt N|all]  a job's training events (the latest attempt by
                                  default), every page of them
      health                      grpc.health.v1 Check of the coordinator

Output: messages as JSON, one per line, with proto field names (like the C++
tools). TLS as the C++ client: --tls-ca F (or --tls for the system's CAs) and, for
mutual TLS, --tls-cert F --tls-key F; default $PRELUDE_TLS_CA, $PRELUDE_TLS_CERT,
$PRELUDE_TLS_KEY, $PRELUDE_TLS=1. Exit codes, as the C++ client: 0 ok, 2 usage or bad job file, 3 RPC
error (or the coordinator is not SERVING), 4 the job ended FAILED or CANCELLED;
1 if the stubs cannot be generated.

Run it with Debian's /usr/bin/python3 (python3-grpcio, python3-protobuf). The
stubs are generated at start-up from the repository's proto/ into a temporary
directory, so this file never goes stale against the protos.
"""
import argparse
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc
from google.protobuf import json_format

PROTO_ROOT = Path(__file__).resolve().parents[2] / "proto"
PROTOS = ["prelude/v1/job.proto", "prelude/v1/service.proto", "prelude/v1/worker.proto"]

# Debian's python3-grpcio has no grpc_health package (python3-grpcio-health-checking
# is not packaged), so we write the standard health.proto ourselves. Its proto package
# is grpc.health.v1 (that makes the method /grpc.health.v1.Health/Check); its file
# name is ours, so the generated module does not collide with the installed `grpc`.
HEALTH_PROTO = """syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health { rpc Check(HealthCheckRequest) returns (HealthCheckResponse); }
"""


def generate_stubs(out):
    """Compiles the protos into `out` and returns the modules we use."""
    (Path(out) / "prelude_health.proto").write_text(HEALTH_PROTO)
    args = [f"-I{PROTO_ROOT}", f"-I{out}", f"--python_out={out}", f"--grpc_python_out={out}",
            *PROTOS, "prelude_health.proto"]
    protoc, plugin = shutil.which("protoc"), shutil.which("grpc_python_plugin")
    if protoc and plugin:
        # Debian 12: protoc 3.21 (protobuf-compiler) with gRPC's Python plugin
        # (protobuf-compiler-grpc). Not grpc_tools.protoc: Debian's python3-grpc-tools
        # 1.14 bundles protoc 3.5, which rejects proto3 `optional` (job.proto uses it).
        # The well-known types (timestamp.proto) come from libprotobuf-dev's /usr/include.
        wkt = ["-I/usr/include"] if Path("/usr/include/google/protobuf").is_dir() else []
        rc = subprocess.call([protoc, f"--plugin=protoc-gen-grpc_python={plugin}", *wkt, *args])
    else:
        # Elsewhere, a recent pip grpcio-tools: its protoc ships the well-known types.
        from grpc_tools import protoc as grpc_protoc
        include = Path(grpc_protoc.__file__).parent / "_proto"
        rc = grpc_protoc.main(["protoc", f"-I{include}", *args])
    if rc != 0:
        sys.exit(f"prelude_client: error: generating stubs from {PROTO_ROOT} failed")
    sys.path.insert(0, out)
    names = ["prelude.v1.job_pb2", "prelude.v1.service_pb2", "prelude.v1.service_pb2_grpc",
             "prelude_health_pb2", "prelude_health_pb2_grpc"]
    return [importlib.import_module(n) for n in names]


def to_json(message):
    return json_format.MessageToJson(message, preserving_proto_field_name=True, indent=None)


def main():
    p = argparse.ArgumentParser(description="Prelude client (Python, gRPC)")
    p.add_argument("--coordinator", default=os.environ.get("PRELUDE_COORDINATOR", "localhost:50051"),
                   help="host:port (default $PRELUDE_COORDINATOR or localhost:50051)")
    p.add_argument("--token", default=os.environ.get("PRELUDE_TOKEN"),
                   help="bearer token (default $PRELUDE_TOKEN)")
    p.add_argument("--token-file", help="read the token from this file")
    env = os.environ.get
    p.add_argument("--tls", action="store_true", default=env("PRELUDE_TLS") == "1",
                   help="TLS, trusting the system's CAs (default $PRELUDE_TLS=1)")
    p.add_argument("--tls-ca", default=env("PRELUDE_TLS_CA") or None, metavar="FILE",
                   help="TLS, trusting the CA in FILE (default $PRELUDE_TLS_CA)")
    p.add_argument("--tls-cert", default=env("PRELUDE_TLS_CERT") or None, metavar="FILE",
                   help="mutual TLS: this client's certificate (default $PRELUDE_TLS_CERT)")
    p.add_argument("--tls-key", default=env("PRELUDE_TLS_KEY") or None, metavar="FILE",
                   help="mutual TLS: its private key (default $PRELUDE_TLS_KEY)")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("submit", help="queue a job")
    s.add_argument("job_file", metavar="JOB.json")
    s.add_argument("--watch", action="store_true", help="then stream its events until it ends")
    for name, text in [("watch", "stream a job's events until it ends"), ("get", "print a job")]:
        sub.add_parser(name, help=text).add_argument("job_id", metavar="ID")
    m = sub.add_parser("metrics", help="a job's training events, every page of them")
    m.add_argument("job_id", metavar="ID")
    m.add_argument("--attempt", default="latest", help="N, or all (default: the latest attempt)")
    sub.add_parser("health", help="is the coordinator serving?")
    a = p.parse_args()
    if bool(a.tls_cert) != bool(a.tls_key):
        p.error("--tls-cert and --tls-key go together (a certificate and its private key)")

    token = a.token
    tls = None  # the PEM files as bytes, read before anything is sent
    try:
        if a.token_file:
            token = Path(a.token_file).read_text().strip()
        spec_json = Path(a.job_file).read_text() if a.command == "submit" else None
    except OSError as e:
        p.exit(2, f"prelude_client: error: {e.filename}: {e.strerror}\n")
    if a.tls or a.tls_ca or a.tls_cert:
        tls = {}
        for name, flag, path in [("root_certificates", "--tls-ca", a.tls_ca),
                                 ("certificate_chain", "--tls-cert", a.tls_cert),
                                 ("private_key", "--tls-key", a.tls_key)]:
            try:
                tls[name] = Path(path).read_bytes() if path else None
            except OSError as e:
                p.exit(2, f"prelude_client: error: {flag} {path}: {e.strerror}\n")
    metadata = [("authorization", f"Bearer {token}")] if token else []

    with tempfile.TemporaryDirectory(prefix="prelude-stubs-") as out:
        job_pb2, service_pb2, service_grpc, health_pb2, health_grpc = generate_stubs(out)
        if spec_json is not None:
            try:
                spec = json_format.Parse(spec_json, job_pb2.JobSpec())
            except json_format.ParseError as e:
                p.exit(2, f"prelude_client: error: {a.job_file}: {e}\n")

        if tls is None:
            channel = grpc.insecure_channel(a.coordinator)
        else:  # no root_certificates: gRPC's default, the system's CAs
            channel = grpc.secure_channel(a.coordinator, grpc.ssl_channel_credentials(**tls))
        jobs = service_grpc.JobServiceStub(channel)
        try:
            if a.command == "health":
                reply = health_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), metadata=metadata, timeout=10)
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                print(status)
                return 0 if status == "SERVING" else 3
            if a.command == "get":
                print(to_json(jobs.GetJob(service_pb2.GetJobRequest(job_id=a.job_id),
                                          metadata=metadata, timeout=30)))
                return 0
            if a.command == "metrics":
                # GetMetrics answers in pages (each well under gRPC's 4 MiB): follow the
                # tokens. The token keeps the attempt of the first page.
                request = service_pb2.GetMetricsRequest(job_id=a.job_id)
                if a.attempt == "all":
                    request.all_attempts = True
                elif a.attempt != "latest":
                    if not a.attempt.isdigit() or int(a.attempt) < 1:
                        p.exit(2, f"prelude_client: error: --attempt: a number from 1, or all; got {a.attempt!r}\n")
                    request.attempt = int(a.attempt)
                while True:
                    page = jobs.GetMetrics(request, metadata=metadata, timeout=60)
                    for event in page.events:
                        print(to_json(event))
                    if not page.next_page_token:
                        return 0
                    request.page_token = page.next_page_token
            if a.command == "submit":
                job = jobs.SubmitJob(service_pb2.SubmitJobRequest(spec=spec), metadata=metadata, timeout=30)
                print(to_json(job), flush=True)
                if not a.watch:
                    return 0
                a.job_id = job.job_id
            # watch: the job's history, then live events; the stream ends with the job.
            for event in jobs.WatchJob(service_pb2.WatchJobRequest(job_id=a.job_id), metadata=metadata):
                print(to_json(event), flush=True)
            job = jobs.GetJob(service_pb2.GetJobRequest(job_id=a.job_id), metadata=metadata, timeout=30)
            state = service_pb2.JobState.Name(job.state)
            print(f"prelude_client: job {job.job_id} {state}" + (f": {job.error}" if job.error else ""),
                  file=sys.stderr)
            return 4 if job.state in (service_pb2.FAILED, service_pb2.CANCELLED) else 0
        except grpc.RpcError as e:
            hint = ""
            if e.code() == grpc.StatusCode.UNAVAILABLE and "Socket closed" in (e.details() or ""):
                hint = (" (if the coordinator serves TLS, give --tls-ca FILE or --tls)" if tls is None else
                        " (TLS: the coordinator closed the connection: does it require a client certificate"
                        " (--tls-cert, --tls-key) from another CA?)")
            print(f"prelude_client: error: {e.code().name}: {e.details()}{hint}", file=sys.stderr)
            return 3
        finally:
            channel.close()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
