#!/usr/bin/python3
"""Bounded chaos test (issue 12, "a fault test that keeps it so").

A coordinator with its local 2-rank pool runs a handful of short jobs and a sweep
while a seeded schedule injects faults:

  kill-coordinator  kill -9 of the coordinator, restarted at once on the same database
  kill-rank         kill -9 of one rank of its pool
  stop-rank         SIGSTOP of one rank, never continued: the coordinator's
                    --stall-timeout must end that pool by itself
  full-disk         the small tmpfs holding the database (and checkpoints) filled
                    to the last byte for a few seconds, then freed

After each fault (once a bounded settle time has passed) and at the end it checks:
every acknowledged job (every id a submit or sweep returned) is present exactly
once; no job is RUNNING on a pool known dead past the heartbeat timeout, nor more
jobs RUNNING than live pools; attempts never above --max-attempts; SQLite
`PRAGMA integrity_check` is ok; the coordinator lives, with at most one pool and
no stopped rank left. At the end: every job final (SUCCEEDED, or FAILED out of
attempts only when the schedule interrupted it that many times), its attempts equal
to the starts in its history, and no process of the run left once the coordinator
has been stopped. It prints the faults injected and the invariants checked.

    chaos_test.py COORDINATOR WORKER SOURCE_DIR

Environment:
  PRELUDE_CHAOS_SEED    replay a schedule (the seed is printed; default: a new one)
  PRELUDE_CHAOS_FAULTS  the fault kinds to inject, comma-separated (default all:
                        kill-coordinator,kill-rank,stop-rank,full-disk)
  PRELUDE_CHAOS_KEEP    set: keep the work directory (coordinator log, database)

The schedule (fault kinds and order, delays, job specs, which rank) follows from the
seed; where a fault lands in training depends on timing, so a replay is close, not
identical. Every wait is bounded; the whole run takes about 2-4 minutes on 2 cores.
"""
import atexit
import errno
import importlib.util
import json
import os
import random
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
from google.protobuf import json_format

ALL_FAULTS = ["kill-coordinator", "kill-rank", "stop-rank", "full-disk"]
# How many of each kind one run injects (shuffled by the seed). Each kind at least once;
# fewer than before (3, 3, 2, 2) since the sanitizer run joined the suite's 25 minutes.
FAULT_COUNTS = {"kill-coordinator": 2, "kill-rank": 2, "stop-rank": 1, "full-disk": 1}
HEARTBEAT_TIMEOUT = 2.0   # --heartbeat-timeout: a silent pool is dropped after this
STALL_TIMEOUT = 12.0      # --stall-timeout, when the coordinator has it
MAX_ATTEMPTS = 4          # --max-attempts
SLACK = 10.0              # on top of the timeouts: respawning a pool, loading data on 2 busy cores
DISK_SIZE = "16m"         # the tmpfs of the database: plenty for the run, quick to fill
FINAL_WAIT = 240.0        # the longest the jobs may take to end once the faults are over

T0 = time.monotonic()


def now():
    return time.monotonic() - T0


def counted(job):
    """The attempts held against --max-attempts: a coordinator that has Job.uncounted_attempts does not
    count the ones a clean restart cut short (none here: its restarts follow kill -9)."""
    return job.attempts - (job.uncounted_attempts if hasattr(job, "uncounted_attempts") else 0)


def log(msg):
    print(f"[{now():6.1f}s] {msg}", flush=True)


class Chaos:
    def __init__(self, coord, worker, src):
        self.coord, self.worker, self.src = os.path.abspath(coord), os.path.abspath(worker), Path(src).resolve()
        self.work = Path(tempfile.mkdtemp(prefix="prelude-chaos-"))
        self.mark = "PRELUDE_CHAOS_RUN=" + secrets.token_hex(8)  # in the environment of every process we start
        self.mounted = False
        self.coord_proc = None
        self.coord_log = open(self.work / "coord.log", "ab")
        self.channel = None
        self.acknowledged = []  # job ids a submit or a sweep returned, in order
        self.sweeps = {}        # sweep id -> its job ids, as SubmitSweep returned them
        self.unacknowledged_submits = 0
        self.faults = []        # dicts: n, t, kind, target, detail, settle, result
        self.dead_pools = {}    # pool id -> monotonic time it was known dead
        self.dead_boots = {}    # "pool-<boot>." prefix of a killed coordinator -> time
        self.checks = {}        # invariant -> [held, failed]
        self.failures = []      # messages
        self.notes = []         # reported, not failed
        self.health_seen = []   # during full disk
        atexit.register(self.cleanup)

    # ------------------------------------------------------------ bookkeeping
    def check(self, name, ok, detail=""):
        held_failed = self.checks.setdefault(name, [0, 0])
        held_failed[0 if ok else 1] += 1
        if not ok:
            msg = f"FAIL {name}" + (f": {detail}" if detail else "")
            self.failures.append(f"[{now():.1f}s] " + msg)
            log(msg)
        return ok

    # ------------------------------------------------------------ processes
    def our_processes(self):
        """Processes of this run (the mark in their environment): [(pid, comm, state)], zombies left out."""
        found = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                env = Path(f"/proc/{d}/environ").read_bytes()
                if self.mark.encode() not in env.split(b"\0"):
                    continue
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            state = stat[stat.rindex(")") + 2]
            if state not in "ZX":
                found.append((int(d), comm, state))
        return found

    @staticmethod
    def alive(pid):
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
        except OSError:
            return False

    def ranks(self):
        return sorted(p for p, comm, state in self.our_processes() if comm == "prelude-worker" and state != "T")

    def wait_ranks(self, timeout):
        """The running ranks of the pool, once there are 2 (bounded); [] if not."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r = self.ranks()
            if len(r) == 2:
                return r
            time.sleep(0.2)
        return []

    # ------------------------------------------------------------ the coordinator
    def start_coordinator(self):
        port_file = self.work / "port"
        port_file.unlink(missing_ok=True)
        cmd = [self.coord, "--listen", "127.0.0.1:0", "--port-file", str(port_file), "--db", str(self.db),
               "--spawn-workers", "2", "--worker-threads", "1", "--worker-binary", self.worker,
               "--heartbeat-timeout", str(HEARTBEAT_TIMEOUT), "--max-attempts", str(MAX_ATTEMPTS)]
        if "stop-rank" in self.kinds:
            cmd += ["--stall-timeout", str(STALL_TIMEOUT)]
        env = dict(os.environ, **dict([self.mark.split("=", 1)]), OMP_NUM_THREADS="1")
        self.coord_proc = subprocess.Popen(cmd, stdout=self.coord_log, stderr=subprocess.STDOUT, env=env,
                                           start_new_session=True)
        end = time.monotonic() + 20
        while time.monotonic() < end and not (port_file.exists() and port_file.read_text().strip()):
            if self.coord_proc.poll() is not None:
                break
            time.sleep(0.1)
        if not (port_file.exists() and port_file.read_text().strip()):
            self.fatal(f"the coordinator did not start (exit {self.coord_proc.poll()})")
        addr = "127.0.0.1:" + port_file.read_text().strip()
        if self.channel:
            self.channel.close()
        self.channel = grpc.insecure_channel(addr)
        self.jobs = self.service_grpc.JobServiceStub(self.channel)
        self.health = self.health_grpc.HealthStub(self.channel)
        log(f"coordinator pid {self.coord_proc.pid} at {addr}")

    def coordinator_alive(self):
        return self.coord_proc is not None and self.coord_proc.poll() is None

    # ------------------------------------------------------------ RPCs
    def rpc(self, method, request, timeout=10):
        """(reply, None) or (None, grpc status code name)."""
        try:
            return method(request, timeout=timeout), None
        except grpc.RpcError as e:
            return None, f"{e.code().name}: {e.details()}"

    def list_jobs(self):
        """Every job, by ListJobs pages; None if the coordinator does not answer."""
        out, token = [], ""
        for _ in range(100):
            reply, err = self.rpc(self.jobs.ListJobs, self.pb.ListJobsRequest(page_size=1000, page_token=token))
            if err:
                return None
            out += list(reply.jobs)
            token = reply.next_page_token
            if not token:
                return out
        return None

    def wait_list(self, timeout=15):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            jobs = self.list_jobs()
            if jobs is not None:
                return jobs
            time.sleep(0.3)
        return None

    def health_status(self):
        reply, err = self.rpc(self.health.Check, self.health_pb.HealthCheckRequest(), timeout=3)
        return err.split(":")[0] if err else self.health_pb.HealthCheckResponse.ServingStatus.Name(reply.status)

    def submit_job(self, spec):
        reply, err = self.rpc(self.jobs.SubmitJob, self.pb.SubmitJobRequest(spec=json_format.ParseDict(
            spec, self.job_pb.JobSpec())))
        if err:
            self.unacknowledged_submits += 1
            log(f"submit {spec['name']}: not acknowledged ({err})")
            return None
        self.acknowledged.append(reply.job_id)
        log(f"submit {spec['name']}: {reply.job_id}")
        return reply.job_id

    def submit_sweep(self, sweep):
        reply, err = self.rpc(self.jobs.SubmitSweep, self.pb.SubmitSweepRequest(sweep=json_format.ParseDict(
            sweep, self.job_pb.SweepSpec())))
        if err:
            self.unacknowledged_submits += 1
            log(f"sweep {sweep['name']}: not acknowledged ({err})")
            return None
        ids = list(reply.sweep.job_ids)
        self.sweeps[reply.sweep.sweep_id] = ids
        self.acknowledged += ids
        log(f"sweep {sweep['name']}: {reply.sweep.sweep_id} with {', '.join(ids)}")
        return reply.sweep.sweep_id

    # ------------------------------------------------------------ invariants
    def integrity(self):
        """PRAGMA integrity_check on a read-only connection (the coordinator may be writing)."""
        last = ""
        for _ in range(10):
            try:
                con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
                try:
                    rows = con.execute("PRAGMA integrity_check").fetchall()
                finally:
                    con.close()
                return [r[0] for r in rows]
            except sqlite3.Error as e:  # busy, or the WAL being checkpointed: try again
                last = str(e)
                time.sleep(0.5)
        return [f"could not read: {last}"]

    def check_invariants(self, when, final=False):
        """The invariants of the brief; returns the number that failed now."""
        before = len(self.failures)
        jobs = self.wait_list()
        if not self.check("the coordinator answers", jobs is not None, f"{when}: ListJobs failed for 15 s"):
            return len(self.failures) - before
        seen = {}
        for j in jobs:
            seen[j.job_id] = seen.get(j.job_id, 0) + 1
        missing = [i for i in self.acknowledged if i not in seen]
        twice = sorted(i for i, c in seen.items() if c > 1)
        self.check("every acknowledged job present", not missing, f"{when}: missing {missing}")
        self.check("no job listed twice", not twice, f"{when}: {twice}")
        for sweep_id, ids in self.sweeps.items():
            reply, err = self.rpc(self.jobs.GetSweep, self.pb.GetSweepRequest(sweep_id=sweep_id))
            self.check("every acknowledged sweep present with its jobs",
                       err is None and list(reply.sweep.job_ids) == ids and [j.job_id for j in reply.jobs] == ids,
                       f"{when}: {sweep_id}: {err or list(reply.sweep.job_ids)}")
        over = [f"{j.job_id} ({j.attempts})" for j in jobs if counted(j) > MAX_ATTEMPTS]
        self.check(f"attempts <= max-attempts ({MAX_ATTEMPTS})", not over, f"{when}: {over}")
        running = [j for j in jobs if j.state == self.pb.RUNNING]
        t = time.monotonic()
        past = HEARTBEAT_TIMEOUT + SLACK
        on_dead = [f"{j.job_id} on {j.pool_id}" for j in running
                   if (j.pool_id in self.dead_pools and t - self.dead_pools[j.pool_id] > past) or
                   any(j.pool_id.startswith(b) and t - tb > past for b, tb in self.dead_boots.items())]
        self.check("no job RUNNING on a dead pool past the heartbeat timeout", not on_dead, f"{when}: {on_dead}")
        self.check("no more jobs RUNNING than live pools (1)", len(running) <= 1,
                   f"{when}: {[(j.job_id, j.pool_id) for j in running]}")
        result = self.integrity()
        self.check("SQLite integrity_check ok", result == ["ok"], f"{when}: {result[:5]}")
        if not final:
            self.check("the coordinator is alive", self.coordinator_alive(),
                       f"{when}: exited with {self.coord_proc.poll()}")
            # A killed coordinator's pool goes down within moments, a respawned one comes up: bounded.
            end = time.monotonic() + SLACK
            while True:
                procs = self.our_processes()
                coords = [p for p, c, s in procs if c.startswith("prelude-coord")]
                mpiruns = [p for p, c, s in procs if c == "mpirun"]
                workers = [(p, s) for p, c, s in procs if c == "prelude-worker"]
                stopped = [(p, c) for p, c, s in procs if s == "T"]
                ok = len(coords) == 1 and len(mpiruns) <= 1 and len(workers) <= 2 and not stopped
                if ok or time.monotonic() > end:
                    break
                time.sleep(0.3)
            self.check("no process left behind: one coordinator, at most one pool, no stopped rank", ok,
                       f"{when}: coordinators {coords}, mpiruns {mpiruns}, ranks {workers}, stopped {stopped} "
                       f"{SLACK:.0f} s on")
        return len(self.failures) - before

    def wait_no_running_on_dead(self, timeout):
        """Bounded: until no job is RUNNING on a pool known dead (the requeue has happened)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            jobs = self.list_jobs()
            if jobs is not None and not any(
                    j.state == self.pb.RUNNING and (j.pool_id in self.dead_pools or
                                                    any(j.pool_id.startswith(b) for b in self.dead_boots))
                    for j in jobs):
                return True
            time.sleep(0.3)
        return False

    def total_steps(self, job):
        t = job.spec.training
        per_epoch = -(-job.spec.dataset.train_limit // t.batch_size)
        return t.max_steps if t.max_steps > 0 else int(t.epochs * per_epoch)

    def running_job(self, timeout, late=False):
        """A job RUNNING whose training is under way in this attempt (its step seen to move: a requeued
        job keeps the progress of its last attempt), and with `late`, within 12 steps of its end; after a
        bounded wait, None if there is none. Not one in its last attempts: the faults are spread over the
        jobs so that each should still succeed (then any FAILED job is a finding)."""
        first = {}  # (job id, attempt) -> the step first seen
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for j in self.list_jobs() or []:
                if j.state == self.pb.RUNNING and j.attempts <= MAX_ATTEMPTS - 2:
                    step = first.setdefault((j.job_id, j.attempts), j.progress.step)
                    if j.progress.step != step and (not late or j.progress.step >= self.total_steps(j) - 12):
                        return j
            time.sleep(0.1)
        return None

    # ------------------------------------------------------------ faults
    def fault(self, kind, params):
        n = len(self.faults) + 1
        f = {"n": n, "t": now(), "kind": kind, "target": "", "detail": "", "settle": 0.0, "result": "",
             "params": params}
        self.faults.append(f)
        # A full disk early in a job fails its reports and checkpoints; late, its end (finish) too.
        late = kind == "full-disk" and params["late"]
        job = self.running_job(30, late)
        f["detail"] = (f"{job.job_id} (attempt {job.attempts}) at step {job.progress.step}/{self.total_steps(job)} "
                       f"on {job.pool_id}: " if job
                       else "no job training: ")
        f["t"] = now()
        start = time.monotonic()
        getattr(self, "fault_" + kind.replace("-", "_"))(f, job)
        f["settle"] = time.monotonic() - start
        failed = self.check_invariants(f"after fault {n} ({kind})")
        f["result"] = "held" if not failed else f"{failed} FAILED"
        log(f"fault {n} {kind}: {f['target']} {f['detail']} -> invariants {f['result']} "
            f"(settled in {f['settle']:.1f} s)")

    def fault_kill_coordinator(self, f, job):
        pid = self.coord_proc.pid
        f["target"] = f"coordinator pid {pid}"
        boot_pools = {j.pool_id.rsplit(".", 1)[0] + "." for j in (self.list_jobs() or []) if j.pool_id}
        # A submit in flight as it dies: acknowledged (then it must be there after the restart) or not.
        spec = self.job_spec(f"chaos-racing-{f['n']}")
        spec["training"]["maxSteps"] = 8
        racer = threading.Thread(target=self.submit_job, args=(spec,))
        racer.start()
        time.sleep(f["params"]["race"])
        os.kill(pid, signal.SIGKILL)
        self.coord_proc.wait(timeout=10)
        racer.join(timeout=15)
        t = time.monotonic()
        if job is not None:
            self.dead_boots[job.pool_id.rsplit(".", 1)[0] + "."] = t
        for b in boot_pools:  # every pool of that coordinator (older boots are long dead anyway)
            self.dead_boots.setdefault(b, t)
        # Its spawned pool must die with it (issue 12, item 5): at most one pool after the restart.
        self.start_coordinator()
        ok = self.wait_no_running_on_dead(HEARTBEAT_TIMEOUT + SLACK)
        f["detail"] += "restarted; " + ("its running job requeued" if ok else "a job still RUNNING on the old pool")
        self.wait_ranks(SLACK)

    def kill_or_stop_rank(self, f, job, sig):
        ranks = self.wait_ranks(SLACK)
        if not ranks:
            f["target"] = "no rank"
            f["detail"] += "the pool had no 2 ranks"
            return None
        pid = ranks[f["params"]["rank"]]
        f["target"] = f"rank pid {pid}"
        os.kill(pid, sig)
        if job is not None:
            self.dead_pools[job.pool_id] = time.monotonic()
        return pid

    def fault_kill_rank(self, f, job):
        if self.kill_or_stop_rank(f, job, signal.SIGKILL) is None:
            return
        ok = self.wait_no_running_on_dead(HEARTBEAT_TIMEOUT + SLACK)
        f["detail"] += "its job requeued" if ok else "its job still RUNNING on the dead pool"
        self.wait_ranks(SLACK)

    def fault_stop_rank(self, f, job):
        pid = self.kill_or_stop_rank(f, job, signal.SIGSTOP)
        if pid is None:
            return
        # Never continued: the stall watchdog must end the pool (the stopped rank with it).
        bound = STALL_TIMEOUT + HEARTBEAT_TIMEOUT + SLACK
        if job is not None:
            # The timeouts count from the fault: mark the pool dead only once the stall timeout is over.
            self.dead_pools[job.pool_id] = time.monotonic() + STALL_TIMEOUT
        ok = self.wait_no_running_on_dead(bound)
        end = time.monotonic() + bound
        while time.monotonic() < end and self.alive(pid):
            time.sleep(0.3)
        f["detail"] += ("its job requeued" if ok else "its job still RUNNING") + \
            ("; the stopped rank is gone" if not self.alive(pid) else "; the stopped rank is still there")
        self.wait_ranks(SLACK)

    def fault_full_disk(self, f, job):
        if not self.mounted:
            f["target"] = "-"
            f["detail"] += "skipped, because no tmpfs could be mounted for the database"
            return
        fill = self.disk / "fill"
        written = 0
        with open(fill, "wb", buffering=0) as out:
            chunk = b"\0" * (1 << 20)
            while True:  # 1 MiB at a time, then smaller pieces: to the last byte
                try:
                    written += out.write(chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    if len(chunk) == 1:
                        break
                    chunk = chunk[:len(chunk) // 16 or 1]
        st = os.statvfs(self.disk)
        f["target"] = f"tmpfs {DISK_SIZE}"
        hold = f["params"]["hold"]
        # While full: a submit (acknowledged only if it returns an id) and the health service.
        spec = self.job_spec(f"chaos-full-disk-{f['n']}")
        jid = self.submit_job(spec)
        statuses = set()
        end = time.monotonic() + hold
        while time.monotonic() < end:
            statuses.add(self.health_status())
            time.sleep(0.5)
        fill.unlink()
        freed = time.monotonic()
        back = None
        while time.monotonic() - freed < SLACK + 10:
            if self.health_status() == "SERVING":
                back = time.monotonic() - freed
                break
            time.sleep(0.3)
        self.health_seen.append(sorted(statuses))
        f["detail"] += (f"filled with {written >> 20} MiB ({st.f_bavail * st.f_frsize} bytes left) for {hold:.1f} s; "
                       f"submit while full: {'acknowledged ' + jid if jid else 'refused'}; "
                       f"health while full: {'/'.join(sorted(statuses))}; "
                       + (f"SERVING {back:.1f} s after freeing" if back is not None else "not SERVING after freeing"))
        if "NOT_SERVING" not in statuses:
            self.notes.append(f"fault {f['n']} (full disk): health stayed {'/'.join(sorted(statuses))} while "
                              "writes failed (degraded mode not in this coordinator yet?)")
        # Let whatever failed to write be retried (a pool's next report, the reaper) before checking.
        self.wait_no_running_on_dead(HEARTBEAT_TIMEOUT + SLACK)
        time.sleep(HEARTBEAT_TIMEOUT + 1)

    # ------------------------------------------------------------ the run
    def job_spec(self, name):
        return {"name": name,
                "dataset": {"name": "fashion-mnist", "trainLimit": 1024, "testLimit": 256},
                "model": {"preset": "plain-4"},
                "training": {"epochs": self.rng.choice([1, 2]), "batchSize": 32, "logEverySteps": 4,
                             "seed": self.rng.randrange(1, 1000), "checkpoint": {"everySteps": 8}}}

    def sweep_spec(self, name):
        base = self.job_spec(name)
        base["training"]["maxSteps"] = 24
        del base["training"]["epochs"]
        return {"name": name, "base": base,
                "grid": [{"field": "model.activation.kind", "values": ["RELU", "PRELU_CHANNELWISE"]}],
                "seeds": [1, 2]}

    def fatal(self, msg):
        log("FATAL " + msg)
        self.dump_log()
        sys.exit(1)

    def dump_log(self):
        try:
            lines = (self.work / "coord.log").read_text(errors="replace").splitlines()
            print("--- coordinator log (last 60 lines)\n" + "\n".join(lines[-60:]), flush=True)
        except OSError:
            pass

    def run(self):
        seed = int(os.environ.get("PRELUDE_CHAOS_SEED") or secrets.randbelow(1 << 31))
        self.rng = random.Random(seed)
        asked = [k.strip() for k in os.environ.get("PRELUDE_CHAOS_FAULTS", ",".join(ALL_FAULTS)).split(",") if k.strip()]
        unknown = [k for k in asked if k not in ALL_FAULTS]
        if unknown:
            print(f"PRELUDE_CHAOS_FAULTS: unknown fault kind {unknown[0]!r}; the kinds are {','.join(ALL_FAULTS)}",
                  file=sys.stderr)
            return 2
        print(f"chaos: seed {seed} (replay with PRELUDE_CHAOS_SEED={seed}); faults asked: {','.join(asked)}",
              flush=True)
        if not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists():
            print("skipped, because Fashion-MNIST is not installed")
            return 0
        # The stubs, generated from proto/ as the Python example client does.
        spec = importlib.util.spec_from_file_location("prelude_client", self.src / "examples/python/prelude_client.py")
        client = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(client)
        (self.work / "stubs").mkdir()
        self.job_pb, self.pb, self.service_grpc, self.health_pb, self.health_grpc = client.generate_stubs(
            str(self.work / "stubs"))

        self.kinds = list(asked)
        help_text = subprocess.run([self.coord, "--help"], capture_output=True, text=True).stdout
        if "stop-rank" in self.kinds and "--stall-timeout" not in help_text:
            print("stop-rank skipped, because this coordinator has no --stall-timeout", flush=True)
            self.notes.append("stop-rank skipped, because this coordinator has no --stall-timeout")
            self.kinds.remove("stop-rank")
        self.disk = self.work / "disk"
        self.disk.mkdir()
        if "full-disk" in self.kinds:
            try:
                r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(self.disk)],
                                   capture_output=True, text=True)
                why = "" if r.returncode == 0 else (r.stderr.strip() or f"mount exited {r.returncode}").splitlines()[-1]
            except OSError as e:
                why = f"mount: {e.strerror}"
            if not why:
                self.mounted = True
            else:
                print(f"full-disk skipped, because a tmpfs cannot be mounted here ({why})", flush=True)
                self.notes.append(f"full-disk skipped, because a tmpfs cannot be mounted here ({why})")
                self.kinds.remove("full-disk")
        self.db = self.disk / "jobs.db"

        # The schedule: the faults shuffled, the later submissions placed among them, the delays.
        plan = [("fault", k) for k in self.kinds for _ in range(FAULT_COUNTS[k])]
        self.rng.shuffle(plan)
        for item in [("job", None)] * 4 + [("sweep", None)]:
            plan.insert(self.rng.randrange(len(plan) + 1), item)
        # Every random choice drawn now, so a replay makes the same ones whatever the timing.
        params = [{"delay": self.rng.uniform(0.5, 3.0), "late": self.rng.random() < 0.5, "rank": self.rng.randrange(2),
                   "hold": self.rng.uniform(4, 8), "race": self.rng.uniform(0, 0.01)} for _ in plan]
        print("schedule: " + ", ".join(k if a == "fault" else "submit " + a for a, k in plan), flush=True)

        self.start_coordinator()
        names = iter(f"chaos-{i}" for i in range(1, 100))
        for _ in range(2):
            self.submit_job(self.job_spec(next(names)))
        self.check_invariants("at start")
        for (action, kind), p in zip(plan, params):
            time.sleep(p["delay"])
            if action == "job":
                self.submit_job(self.job_spec(next(names)))
            elif action == "sweep":
                self.submit_sweep(self.sweep_spec("chaos-sweep"))
            else:
                self.fault(kind, p)
        faults_over = now()

        # The end: every job final, within a bound.
        log("faults over; waiting for every job to end")
        end = time.monotonic() + FINAL_WAIT
        jobs = []
        while time.monotonic() < end:
            jobs = self.list_jobs() or []
            if jobs and all(j.state in (self.pb.SUCCEEDED, self.pb.FAILED, self.pb.CANCELLED) for j in jobs):
                break
            time.sleep(1)
        not_final = [f"{j.job_id} {self.pb.JobState.Name(j.state)}" for j in jobs
                     if j.state not in (self.pb.SUCCEEDED, self.pb.FAILED, self.pb.CANCELLED)]
        self.check("every job final at the end", not not_final, f"after {FINAL_WAIT:.0f} s: {not_final}")
        self.check_invariants("at the end")
        self.judge_ends(jobs)
        extra = sorted(set(j.job_id for j in jobs) - set(self.acknowledged))
        if extra:  # a submit whose reply was lost as the coordinator died: allowed, but worth knowing
            self.notes.append(f"stored but never acknowledged: {', '.join(extra)}")
        states = {}
        for j in jobs:
            states[self.pb.JobState.Name(j.state)] = states.get(self.pb.JobState.Name(j.state), 0) + 1

        # Stop the coordinator as an operator would: its pool goes with it, nothing is left.
        self.coord_proc.send_signal(signal.SIGTERM)
        try:
            self.coord_proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.check("the coordinator stops on SIGTERM within 30 s", False)
        end = time.monotonic() + 15
        while time.monotonic() < end and self.our_processes():
            time.sleep(0.2)
        left = self.our_processes()
        self.check("no process left behind after the coordinator stops", not left, f"{left}")
        result = self.integrity()
        self.check("SQLite integrity_check ok", result == ["ok"], f"after the coordinator stopped: {result[:5]}")

        self.report(seed, faults_over, states, len(jobs))
        if self.failures:
            self.dump_log()
        return 1 if self.failures else 0

    def history(self, job_id):
        """The job's state changes: [(state name, reason, seconds since the epoch)] (bounded)."""
        out = []
        try:
            for e in self.jobs.WatchJob(self.pb.WatchJobRequest(job_id=job_id), timeout=15):
                if e.HasField("state_change"):
                    out.append((self.pb.JobState.Name(e.state_change.state), e.state_change.reason,
                                e.time.seconds + e.time.nanos / 1e9))
        except grpc.RpcError as e:
            return None, f"{e.code().name}: {e.details()}"
        return out, None

    def judge_ends(self, jobs):
        """Attempts equal the starts in each history; a FAILED job is legitimate only when out of
        attempts with at least that many faults injected while it was being tried."""
        fault_walls = [time.time() - (now() - f["t"]) for f in self.faults if f["target"] not in ("", "-", "no rank")]
        for j in jobs:
            hist, err = self.history(j.job_id)
            if not self.check("the history of every job readable", hist is not None, f"{j.job_id}: {err}"):
                continue
            starts = [h for h in hist if h[0] == "RUNNING"]
            self.check("attempts equal the starts in the job's history", len(starts) == j.attempts,
                       f"{j.job_id}: attempts {j.attempts}, {len(starts)} RUNNING events")
            if j.state == self.pb.FAILED:
                t0, t1 = (starts[0][2] if starts else hist[0][2]) - 1, hist[-1][2] + 1
                hits = sum(1 for t in fault_walls if t0 <= t <= t1)
                legit = counted(j) == MAX_ATTEMPTS and "giving up" in j.error and hits >= MAX_ATTEMPTS
                self.check("a FAILED job is out of attempts after as many faults", legit,
                           f"{j.job_id}: {j.error!r} after {j.attempts} attempts, {hits} faults while tried")
                if legit:
                    self.notes.append(f"{j.job_id} FAILED legitimately: {j.error} ({hits} faults while tried)")
            elif j.state == self.pb.SUCCEEDED:
                self.check("every SUCCEEDED job keeps its final model", any(c.final for c in j.checkpoints),
                           f"{j.job_id}: checkpoints kept: {[c.step for c in j.checkpoints]}, no final one")
            elif j.state == self.pb.CANCELLED:
                self.check("no job CANCELLED (nobody cancelled one)", False, f"{j.job_id}: {j.error}")

    def report(self, seed, faults_over, states, njobs):
        print("\nfaults injected")
        print(f"  {'#':>2}  {'at':>6}  {'kind':<16}  {'target':<22}  {'settle':>6}  invariants  detail")
        for f in self.faults:
            print(f"  {f['n']:>2}  {f['t']:5.1f}s  {f['kind']:<16}  {f['target']:<22}  {f['settle']:5.1f}s  "
                  f"{f['result']:<10}  {f['detail']}")
        print("\ninvariants checked")
        print(f"  {'held':>4}  {'failed':>6}  invariant")
        for name, (held, failed) in self.checks.items():
            print(f"  {held:>4}  {failed:>6}  {name}")
        for n in self.notes:
            print("note: " + n)
        for msg in self.failures:
            print(msg)
        kinds = {}
        for f in self.faults:
            kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
        held = sum(h for h, _ in self.checks.values())
        failed = sum(x for _, x in self.checks.values())
        print(f"\nchaos summary: seed {seed}, {len(self.faults)} faults "
              f"({', '.join(f'{v} {k}' for k, v in kinds.items())}) in {faults_over:.0f} s, "
              f"{len(self.acknowledged)} jobs acknowledged ({njobs} stored; "
              f"{', '.join(f'{v} {k}' for k, v in sorted(states.items()))}), "
              f"{self.unacknowledged_submits} submits not acknowledged; {held} invariant checks held, {failed} failed; "
              f"{now():.0f} s in all", flush=True)

    def cleanup(self):
        """Whatever happened: every process of the run killed (stopped ones too), the tmpfs unmounted."""
        if self.channel:
            self.channel.close()
        for pid, comm, state in self.our_processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if self.coord_proc and self.coord_proc.poll() is None:
            self.coord_proc.kill()
            self.coord_proc.wait()
        if self.mounted:
            if os.environ.get("PRELUDE_CHAOS_KEEP"):
                shutil.copytree(self.disk, self.work / "disk-copy", dirs_exist_ok=True)
            for _ in range(20):
                if subprocess.run(["umount", str(self.disk)], capture_output=True).returncode == 0:
                    break
                time.sleep(0.2)
            else:
                subprocess.run(["umount", "-l", str(self.disk)], capture_output=True)
            self.mounted = False
        if os.environ.get("PRELUDE_CHAOS_KEEP"):
            print(f"kept {self.work} (PRELUDE_CHAOS_KEEP)", flush=True)
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def main():
    if len(sys.argv) != 4:
        print("usage: chaos_test.py COORDINATOR WORKER SOURCE_DIR", file=sys.stderr)
        return 2
    # ctest's TIMEOUT sends SIGTERM (then SIGKILL): clean up on it like on any exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return Chaos(*sys.argv[1:]).run()


if __name__ == "__main__":
    sys.exit(main())
