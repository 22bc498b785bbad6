"""The browser half of dashboard_e2e_test.sh: one headless Chromium, driven over
--remote-debugging-pipe (the DevTools protocol, no library), loads each dashboard page of
a live coordinator and checks it against the JSON API:

  - each page loads without a console error, an uncaught exception or a failed request;
  - the numbers in its DOM equal the API's (read at once after the DOM, on ended jobs
    where they can no longer move);
  - a running job's loss chart grows while the page is open (it polls), and between two
    loads;
  - a queued job shows its place in the queue and why it waits;
  - screenshots of every page are written to OUT.

Prints "ok   NAME" / "FAIL NAME" lines; exits 1 on any failure.

  dashboard_browser.py CHROMIUM HTTP_URL TOKEN_DIR OUT CLIENT RUNNING_JOB SWEEP QUEUED_JOB
"""
import base64
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

CHROMIUM, URL, TOKENS, OUT, CLIENT, RUNNING, SWEEP, QUEUED = sys.argv[1:9]
token = {who: open(os.path.join(TOKENS, who + ".token")).read().split()[0] for who in ("alice", "ops")}
failures = 0


def check(name, ok, detail=""):
    global failures
    print(("ok   " if ok else "FAIL ") + name + ("" if ok or not detail else "\n     " + detail), flush=True)
    failures += 0 if ok else 1
    return ok


def api(path, who="alice"):
    req = urllib.request.Request(URL + path, headers={"Authorization": "Bearer " + token[who]})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def wait_until(what, cond, timeout):
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v or time.time() > deadline:
            return v
        time.sleep(0.25)


class Browser:
    """Chromium with its DevTools endpoint on fds 3 (commands in) and 4 (replies out)."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="prelude-chromium-")
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()

        def fds():
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--remote-debugging-pipe",
             "--user-data-dir=" + self.profile, "--window-size=1400,1000", "about:blank"],
            preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.next_id = 0
        self.replies = {}
        self.events = queue.Queue()
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(domain + ".enable", session=True)
        self.problems = []  # console errors, exceptions, failed loads: (page, text)
        self.page = ""

    def _read(self):
        buf = b""
        while True:
            chunk = os.read(self.from_chrome, 1 << 16)
            if not chunk:
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self.cv:
                        self.replies[msg["id"]] = msg
                        self.cv.notify_all()
                else:
                    self.events.put(msg)

    def call(self, method, session=False, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        with self.cv:
            if not self.cv.wait_for(lambda: self.next_id in self.replies, timeout=30):
                raise RuntimeError(method + ": no reply from Chromium")
            reply = self.replies.pop(self.next_id)
        if "error" in reply:
            raise RuntimeError(method + ": " + json.dumps(reply["error"]))
        return reply.get("result", {})

    def drain(self):
        """Takes the console errors, exceptions and failed loads reported so far."""
        while not self.events.empty():
            e = self.events.get()
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                self.problems.append((self.page, (d.get("exception") or {}).get("description") or d.get("text")))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                self.problems.append((self.page, " ".join(str(a.get("value", a.get("description")))
                                                          for a in p.get("args", []))))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                self.problems.append((self.page, p["entry"].get("text", "") + " " + p["entry"].get("url", "")))

    def load(self, name, path, ready, timeout=20):
        """Opens URL+path; waits until the JS expression `ready` is true. True if it became so."""
        self.drain()
        self.page = name
        self.call("Page.navigate", session=True, url=URL + path)
        # (The old page may still be there, or the new one not yet built.)
        ok = wait_until(name, lambda: self.eval("(() => { try { return !!(%s); } catch (e) { return false; } })()"
                                                % ready), timeout)
        self.drain()
        return bool(ok)

    def eval(self, expression):
        r = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(expression + ": " + json.dumps(r["exceptionDetails"])[:300])
        return r["result"].get("value")

    def screenshot(self, file):
        height = self.eval("document.documentElement.scrollHeight")
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=1400, height=min(int(height), 4000),
                  deviceScaleFactor=1, mobile=False)
        time.sleep(0.3)  # a relayout at the new size
        png = base64.b64decode(self.call("Page.captureScreenshot", session=True, format="png")["data"])
        self.call("Emulation.clearDeviceMetricsOverride", session=True)
        with open(file, "wb") as f:
            f.write(png)
        return len(png)

    def close(self):
        try:
            self.call("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def problems_of(b, page):
    b.drain()
    return [text for p, text in b.problems if p == page]


JOB_READY = "document.querySelector('#content') && !document.querySelector('#content').hidden && " \
            "document.querySelector('#content').dataset.events !== undefined"
POINTS = "Number(document.querySelector('#chart-loss').dataset.points || 0)"

os.makedirs(OUT, exist_ok=True)
b = Browser()
try:
    # --- The jobs list as an admin: the queued job's place and reason, as the API says.
    # (The token of a link's fragment, as a user would be given it.)
    ROW = "document.querySelector('tr[data-job-id=\"%s\"]')" % QUEUED
    check("jobs page loads for an admin", b.load("jobs-admin", "/#token=" + token["ops"], ROW))
    row = b.eval("(() => { const r = %s; const w = r.querySelector('.waiting'); return {state: r.dataset.state, "
                 "position: w && Number(w.dataset.position), text: w && w.textContent}; })()" % ROW)
    shown = api("/api/jobs/" + QUEUED, "ops")
    check("a queued job shows its position in the queue (%s) and why it waits" % shown.get("queuePosition"),
          row["state"] == "QUEUED" and row["position"] == shown.get("queuePosition")
          and shown.get("waitingReason", "?") in (row["text"] or ""), "DOM %r, API %r" % (row, shown))
    b.screenshot(os.path.join(OUT, "jobs-running.png"))

    # --- A running job: its page polls, and the loss chart grows.
    job = api("/api/jobs/" + RUNNING)
    check("the job is running when its page is opened", job["state"] == "RUNNING", job["state"])
    t0 = time.time()
    check("job page loads (token from the link's fragment into sessionStorage)",
          b.load("job-running", "/job.html?id=%s#token=%s" % (RUNNING, token["alice"]), JOB_READY + " && " + POINTS))
    print("     the job page was ready in %.1f s" % (time.time() - t0))
    first = b.eval(POINTS)
    grown = wait_until("growth", lambda: max(b.eval(POINTS) - first, 0), 30) + first
    check("a running job's loss chart grows while the page is open (%d points, then %s)" % (first, grown),
          grown > first)
    check("the token is out of the address bar", "token" not in b.eval("location.href"))
    b.load("job-running-again", "/job.html?id=" + RUNNING, JOB_READY + " && " + POINTS)
    again = b.eval(POINTS)
    check("and between two loads (%d, then %d points)" % (first, again), again > first)
    check("the token stayed in this tab's sessionStorage",
          b.eval("sessionStorage.getItem('prelude-token')") == token["alice"])

    # --- Once the sweep has ended, every number stays put: the DOM must equal the API.
    ended = wait_until("sweep end", lambda: all(j["state"] in ("SUCCEEDED", "FAILED", "CANCELLED")
                                               for j in api("/api/sweeps/" + SWEEP)["jobs"]), 240)
    check("the sweep ends", bool(ended))

    check("jobs page loads for alice", b.load("jobs", "/", "document.querySelectorAll('#jobs tbody tr').length > 0"))
    rows = b.eval("[...document.querySelectorAll('#jobs tbody tr')].map(r => ({id: r.dataset.jobId, "
                  "state: r.dataset.state, acc: r.querySelector('.acc').dataset.value ?? null, "
                  "accText: r.querySelector('.acc').textContent, ips: r.querySelector('.ips').dataset.value ?? null, "
                  "owner: r.children[3].textContent}))")
    listed = api("/api/jobs?page_size=50")["jobs"]
    check("the jobs page lists alice's jobs, the API's, in its order (%d)" % len(rows),
          [r["id"] for r in rows] == [j["jobId"] for j in listed] and all(r["owner"] == "alice" for r in rows))
    check("bob's queued job is not on alice's page", QUEUED not in [r["id"] for r in rows])
    same = True
    for r, j in zip(rows, listed):
        if j["state"] == "RUNNING":
            continue
        acc = j.get("latestMetrics", {}).get("testAccuracy")
        ips = j.get("latestMetrics", {}).get("trainImagesPerSecond")
        want = (j["state"], acc, "%.4f" % acc if acc is not None else "–", ips)
        got = (r["state"], None if r["acc"] is None else float(r["acc"]), r["accText"],
               None if r["ips"] is None else float(r["ips"]))
        if got != want:
            same = check("row %s equals the API" % j["jobId"], False, "DOM %r, API %r" % (got, want))
    check("every ended job's state, test accuracy and images/s in the DOM equal the API's", same)
    # The page polls every 2 s. Nothing changes now, so the browser's poll carries its
    # copy's tag and the coordinator answers 304 without a body; Chromium then reports the
    # poll as its copy's 200, but with only the headers transferred (transferSize below
    # the body's size, where the first poll's is above it).
    polls_js = ("performance.getEntriesByType('resource').filter(e => e.name.includes('/api/jobs?'))"
                ".map(e => [e.transferSize, e.encodedBodySize])")
    polls = wait_until("a revalidated poll",
                       lambda: (lambda p: p if len(p) >= 3 else None)(b.eval(polls_js)), 10) or b.eval(polls_js)
    check("an unchanged list is not sent again: polls after the first move headers only (%s)"
          % ", ".join("%d/%d B" % tuple(p) for p in polls[:4]),
          len(polls) >= 3 and polls[0][0] > polls[0][1] and all(0 < t < body for t, body in polls[1:]))
    b.screenshot(os.path.join(OUT, "jobs.png"))

    check("the ended job's page loads",
          b.load("job", "/job.html?id=" + RUNNING, JOB_READY + " && document.querySelector('#content').dataset.ended "
                 "=== 'true'"))
    dom = b.eval("""(() => { const v = (id) => document.querySelector(id).dataset.value ?? null;
      const n = (id) => Number(document.querySelector(id).dataset.points || 0);
      return {acc: v('#f-test-accuracy'), loss: v('#f-test-loss'), step: v('#f-progress'),
              state: document.querySelector('#f-state').textContent,
              loss_points: n('#chart-loss'), acc_points: n('#chart-accuracy'), lr_points: n('#chart-lr'),
              act_lines: document.querySelectorAll('#chart-act path.series').length,
              grad_lines: document.querySelectorAll('#chart-grad path.series').length,
              act_points: n('#chart-act'), slope_charts: document.querySelectorAll('#slopes figure').length,
              slope_boxes: [...document.querySelectorAll('#slopes svg')].map(s => Number(s.dataset.points)),
              downloads: document.querySelectorAll('#downloads a.download').length}; })()""")
    j = api("/api/jobs/" + RUNNING)
    events, after = [], 0
    while True:
        page = api("/api/jobs/%s/events?after=%d" % (RUNNING, after))
        events += page["events"]
        after = page["last"]
        if not page["events"]:
            break
    t = [e["training"] for e in events if "training" in e]
    kind = lambda e: e.get("kind") or e.get("event", "").upper()
    steps = [e for e in t if kind(e) == "STEP"]
    epochs = [e for e in t if kind(e) == "EPOCH"]
    diags = [e for e in t if kind(e) == "DIAGNOSTICS" and e.get("layers")]
    m = j["latestMetrics"]
    check("job page: state, test accuracy and loss equal the API's",
          (dom["state"], float(dom["acc"]), float(dom["loss"])) == (j["state"], m["testAccuracy"], m["testLoss"]),
          "DOM %r, API %r" % (dom, m))
    want_loss = sum("loss" in e for e in steps) + sum("trainLoss" in e for e in epochs) + \
        sum("testLoss" in e for e in epochs)
    check("job page: the loss chart has every step and epoch of the API (%d points)" % want_loss,
          dom["loss_points"] == want_loss, "DOM %d" % dom["loss_points"])
    check("job page: the learning rate chart has a point per step (%d)" % len(steps),
          dom["lr_points"] == len(steps), "DOM %d" % dom["lr_points"])
    check("job page: one diagnostics line per diagnostics event (%d), a point per layer" % len(diags),
          dom["act_lines"] == len(diags) == dom["grad_lines"] and
          dom["act_points"] == sum(len(d["activationStd"]) for d in diags), repr(dom))
    layers = {a["layer"] for e in epochs for a in e.get("alphas", [])}
    check("job page: a slopes chart per activation layer (%d), a box per epoch" % len(layers),
          dom["slope_charts"] == len(layers) and all(n == len(epochs) for n in dom["slope_boxes"]), repr(dom))
    check("job page: download links for each kept model (.ckpt and ONNX)",
          dom["downloads"] == 2 * len(j.get("checkpoints", [])) > 0, repr(dom))
    # The download link works from the page (fetch with the token, as its click does).
    size = b.eval("fetch(document.querySelector('#downloads a.download').href, {headers: {Authorization: "
                  "'Bearer ' + sessionStorage.getItem('prelude-token')}}).then(r => r.ok ? r.blob() : null)"
                  ".then(b => b ? b.size : -1)")
    check("job page: its model download serves the checkpoint's bytes (%s)" % size,
          size == int(j["checkpoints"][0]["bytes"]))
    b.screenshot(os.path.join(OUT, "job.png"))

    check("sweep page loads", b.load("sweep", "/sweep.html?id=" + SWEEP,
                                      "document.querySelector('#content').dataset.ended === 'true' && "
                                      "document.querySelectorAll('#compare tbody tr').length > 0"))
    dom = b.eval("""({rows: [...document.querySelectorAll('#compare tbody tr')].map(r => ({point: r.dataset.point,
        ok: r.querySelector('.ok').textContent, acc: r.querySelector('.acc').dataset.value ?? null})),
        failures: [...document.querySelectorAll('#failures li')].map(l => l.textContent),
        curves: document.querySelectorAll('#chart-loss path.series').length})""")
    s = api("/api/sweeps/" + SWEEP)
    want = [{"point": r["point"], "ok": "%d/%d" % (r["succeeded"], r["jobs"]),
             "acc": None if r["test_accuracy"] is None else r["test_accuracy"]["mean"]} for r in s["rows"]]
    got = [dict(r, acc=None if r["acc"] is None else float(r["acc"])) for r in dom["rows"]]
    check("sweep page: the comparison table equals the API's rows", got == want, "DOM %r, API %r" % (got, want))
    cli = [json.loads(line) for line in subprocess.run(
        [CLIENT, "--token-file", os.path.join(TOKENS, "alice.token"), "compare", SWEEP, "--format", "json"],
        capture_output=True, text=True, check=True).stdout.splitlines() if line.strip()]
    check("sweep page: and `prelude compare`'s", [(r["point"], r["test_accuracy"] and r["test_accuracy"]["mean"])
                                                  for r in cli] == [(w["point"], w["acc"]) for w in want])
    want_fail = ["failed: " + f for r in s["rows"] for f in r["failures"]]
    check("sweep page: failures with their reasons (%d)" % len(want_fail),
          dom["failures"] == want_fail and len(want_fail) > 0, repr(dom["failures"]))
    check("sweep page: a loss curve per job that trained", dom["curves"] >= 1, repr(dom))
    b.screenshot(os.path.join(OUT, "sweep.png"))

    for page in ("job-running", "job-running-again", "jobs-admin", "jobs", "job", "sweep"):
        found = problems_of(b, page)
        check("no console errors on " + page, not found, "\n     ".join(found[:5]))

    # Without a token: the login form, and no data.
    b.eval("sessionStorage.clear()")
    check("without a token the page asks for one",
          b.load("login", "/", "!document.querySelector('#login').hidden && document.querySelector('#content').hidden"))
    check("and shows no jobs", b.eval("document.querySelectorAll('#jobs tbody tr').length") == 0)
    # The detector itself: the refused request of that page is a console error it must see.
    check("the console check sees errors (the login page's refused request: %d)" % len(problems_of(b, "login")),
          any("401" in text for text in problems_of(b, "login")), repr(problems_of(b, "login")))
    b.screenshot(os.path.join(OUT, "login.png"))
finally:
    b.close()

sys.exit(1 if failures else 0)
