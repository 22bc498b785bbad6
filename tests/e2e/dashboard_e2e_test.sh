#!/usr/bin/env bash
# The web dashboard end to end, in headless Chromium: a coordinator with tokens, its own
# spawned pool and --http on a port it picks trains alice's sweep of two points (one
# diverges and FAILS, one trains for 3 short epochs); bob's job waits behind it. Then
# dashboard_browser.py opens every page in one Chromium (DevTools over a pipe) and checks
# it against the JSON API: no console errors, the DOM's numbers equal the API's, the
# running job's chart grows, the queued job says why it waits; screenshots of each page
# are kept in OUT (the build's test output) and the job page's is the README's when
# PRELUDE_UPDATE_DOCS=1. The API's refusals are checked with curl. Skipped (77) without
# chromium or Fashion-MNIST.
#
#   dashboard_e2e_test.sh COORDINATOR WORKER CLIENT SOURCE_DIR OUT
set -uo pipefail
COORD=$1 WORKER=$2 CLIENT=$3 SRC=$4 OUT=$5
PY=/usr/bin/python3
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[[ -n $CHROMIUM ]] || { echo "skipped, because chromium is not installed (scripts/install-deps.sh)"; exit 77; }
command -v curl > /dev/null || { echo "skipped, because curl is not installed"; exit 77; }
if [[ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
  echo "skipped, because Fashion-MNIST is not installed"; exit 77
fi
source "$(dirname "$0")/lib.sh"
fail_dump() { for log in "$work"/*.log; do echo "--- $log"; tail -20 "$log"; done; }
started=$(date +%s)

for who in alice:user bob:user ops:admin extpool:pool; do
  "$COORD" token add "${who%%:*}" --role "${who#*:}" --tokens-file "$work/tokens" > "$work/${who%%:*}.token" \
    2> "$work/token-add.log" || { echo "token add ${who%%:*} failed"; cat "$work/token-add.log"; exit 1; }
done
setsid "$COORD" --listen 127.0.0.1:0 --port-file "$work/port" --db "$work/jobs.db" --tokens-file "$work/tokens" \
  --spawn-workers 1 --worker-binary "$WORKER" --http 127.0.0.1:0 --http-port-file "$work/http-port" \
  > "$work/coord.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.1; done
[[ -s "$work/port" && -s "$work/http-port" ]] || { echo "the coordinator did not start"; fail_dump; exit 1; }
export PRELUDE_COORDINATOR=127.0.0.1:$(cat "$work/port")
url=http://127.0.0.1:$(cat "$work/http-port")
as() { local who=$1; shift; "$CLIENT" --token-file "$work/$who.token" "$@"; }

# A learning rate of 10 diverges within a few steps: a failure with its reason. The other
# job's 150 steps keep it running (about 10 s on a quiet 2-core Zen 5) well past the moment
# the browser opens its page: 24 steps were done before Chromium had started on a quiet
# CI machine, and no chart could grow.
cat > "$work/sweep.json" <<'JSON'
{ "name": "dash-sweep",
  "base": { "dataset": { "name": "fashion-mnist", "trainLimit": 3200, "testLimit": 200 },
            "training": { "epochs": 3, "batchSize": 64, "logEverySteps": 2 } },
  "grid": [ { "field": "training.learningRate", "values": [10, 0.01] } ] }
JSON
cat > "$work/bob.json" <<'JSON'
{ "name": "bobs-job", "dataset": { "name": "fashion-mnist", "trainLimit": 640, "testLimit": 200 } }
JSON
sweep=$(as alice sweep "$work/sweep.json" 2> "$work/sweep.log")
check "alice submits a sweep" [ -n "$sweep" ]
queued=$(as bob submit "$work/bob.json")
check "bob submits a job, queued behind it" [ -n "$queued" ]
# api WHO PATH: the body (status in $work/status).
api() {
  local auth=()
  [[ -n $1 ]] && auth=(-H "Authorization: Bearer $(head -1 "$work/$1.token")")
  curl -s -o "$work/body" -w '%{http_code}' "${auth[@]}" "$url$2" > "$work/status"
  cat "$work/body"
}
jobs_json=$(api alice "/api/jobs?sweep=$sweep")
running=$(echo "$jobs_json" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["jobId"])')
check "the sweep's jobs are listed (the last, lr 0.01, is $running)" [ -n "$running" ]

api bob "/api/jobs/$running" | sed "s/$running/job-999999/" > "$work/theirs"
check "bob: alice's job is 404" [ "$(cat "$work/status")" = 404 ]
api bob /api/jobs/job-999999 > "$work/unknown"
check "bob: exactly as an unknown one" bash -c "grep -q NOT_FOUND '$work/unknown' && cmp -s '$work/theirs' '$work/unknown'"
api extpool /api/jobs > /dev/null
check "a pool's token is refused 403" [ "$(cat "$work/status")" = 403 ]
api "" /api/jobs > /dev/null
check "no token is refused 401" [ "$(cat "$work/status")" = 401 ]
check "the pages need no token" [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/")" = 200 ]

# Until the lr 0.01 job runs with a few steps on its chart.
for _ in $(seq 240); do
  n=$(api alice "/api/jobs/$running/events?after=0" | "$PY" -c \
    'import json,sys; b=json.load(sys.stdin); print(sum(1 for e in b["events"] if (e.get("training") or {}).get("kind")=="STEP") if b["job"]["state"]=="RUNNING" else -1)' 2> /dev/null)
  [[ ${n:--1} -ge 2 ]] && break
  sleep 0.25
done
check "the lr 0.01 job is running with steps reported" [ "${n:--1}" -ge 2 ]

mkdir -p "$OUT"
"$PY" "$(dirname "$0")/dashboard_browser.py" "$CHROMIUM" "$url" "$work" "$OUT" "$CLIENT" "$running" "$sweep" \
  "$queued"
check "the pages, in Chromium, equal the API" [ $? -eq 0 ]
as ops cancel "$queued" > /dev/null 2>&1
if [[ -n ${PRELUDE_UPDATE_DOCS:-} && -s $OUT/job.png ]]; then
  cp "$OUT/job.png" "$SRC/docs/dashboard-job.png" && echo "copied $OUT/job.png to docs/dashboard-job.png"
fi
echo "screenshots in $OUT: $(cd "$OUT" && ls *.png 2> /dev/null | tr '\n' ' ')"
echo "$passes passed, $failures failed in $(($(date +%s) - started)) s"
((failures == 0)) || { fail_dump; exit 1; }
