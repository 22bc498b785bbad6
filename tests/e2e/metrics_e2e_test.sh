#!/usr/bin/env bash
# /metrics end to end: a coordinator with --http on a port it picks, N jobs submitted
# with no pool to run them; `promtool check metrics` lints the exposition, and a real
# Prometheus server (started here on a loopback port, its data in the work directory)
# scrapes it: PromQL answers the queue depth N, the submits counted OK and, after a
# cancel, one CANCELLED job. A second coordinator with TLS and tokens is scraped over
# HTTPS with a pool's token; a user's token and none are refused. Skipped (77) without
# prometheus and promtool.
#
#   metrics_e2e_test.sh COORDINATOR CLIENT SOURCE_DIR
set -uo pipefail
COORD=$1 CLIENT=$2 SRC=$3
PY=/usr/bin/python3
for tool in prometheus promtool curl openssl; do
  command -v "$tool" > /dev/null || { echo "skipped, because $tool is not installed (scripts/install-deps.sh)"; exit 77; }
done
if [[ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
  echo "skipped, because Fashion-MNIST is not installed"; exit 77
fi
source "$(dirname "$0")/lib.sh"
fail_dump() {
  echo "--- coordinator log"; tail -20 "$work/coord.log"
  echo "--- prometheus log"; tail -20 "$work/prom.log" 2> /dev/null
}

cat > "$work/job.json" <<'JOB'
{ "name": "e2e-metrics", "dataset": { "name": "fashion-mnist", "trainLimit": 640, "testLimit": 200 },
  "training": { "epochs": 1, "batchSize": 64 } }
JOB

setsid "$COORD" --listen 127.0.0.1:0 --port-file "$work/port" --db "$work/jobs.db" \
  --http 127.0.0.1:0 --http-port-file "$work/http-port" >> "$work/coord.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.1; done
[[ -s "$work/port" && -s "$work/http-port" ]] || { echo "coordinator did not start"; fail_dump; exit 1; }
export PRELUDE_COORDINATOR=127.0.0.1:$(cat "$work/port")
metrics_url=http://127.0.0.1:$(cat "$work/http-port")/metrics

# The second coordinator: TLS (throw-away certificates) and tokens.
"$SRC/scripts/dev-certs.sh" "$work/certs" > /dev/null 2>&1 || { echo "scripts/dev-certs.sh failed"; exit 1; }
for who in admin:admin pool:pool alice:user; do
  "$COORD" token add "${who%%:*}" --role "${who#*:}" --tokens-file "$work/tokens" > "$work/${who%%:*}.token" 2> /dev/null
done
setsid "$COORD" --listen 127.0.0.1:0 --port-file "$work/tls-port" --db "$work/tls.db" --tokens-file "$work/tokens" \
  --tls-cert "$work/certs/server.pem" --tls-key "$work/certs/server.key" \
  --http 127.0.0.1:0 --http-port-file "$work/tls-http-port" >> "$work/coord-tls.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -s "$work/tls-port" ]] && break; sleep 0.1; done
[[ -s "$work/tls-http-port" ]] || { echo "the TLS coordinator did not start"; tail "$work/coord-tls.log"; exit 1; }
tls_url=https://localhost:$(cat "$work/tls-http-port")/metrics
# status TOKEN-NAME|'': the HTTP status of a scrape over TLS with that token.
status() {
  local auth=()
  [[ -n $1 ]] && auth=(-H "Authorization: Bearer $(head -1 "$work/$1.token")")
  curl -s -o /dev/null -w '%{http_code}' --cacert "$work/certs/ca.pem" "${auth[@]}" "$tls_url"
}
check "TLS: a pool's token may scrape" test "$(status pool)" = 200
check "TLS: an admin's token may scrape" test "$(status admin)" = 200
check "TLS: a user's token is refused 403" test "$(status alice)" = 403
check "TLS: no token is refused 401" test "$(status '')" = 401
check "TLS: plain HTTP gets no metrics" \
  bash -c "! curl -sf http://127.0.0.1:$(cat "$work/tls-http-port")/metrics > /dev/null 2>&1"

N=3
ids=()
for _ in $(seq $N); do ids+=("$("$CLIENT" submit "$work/job.json")"); done
check "$N jobs submitted" test ${#ids[@]} -eq $N -a -n "${ids[$((N - 1))]}"

curl -sf "$metrics_url" > "$work/metrics.txt"
check "the exposition has the queue depth $N" grep -qx "prelude_queue_depth $N" "$work/metrics.txt"
lint() { promtool check metrics < "$work/metrics.txt" > "$work/lint.txt" 2>&1 || { cat "$work/lint.txt"; return 1; }; }
check "promtool check metrics passes" lint

# Prometheus on a free loopback port, scraping every second.
prom_port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/prometheus.yml" <<YML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prelude
    static_configs:
      - targets: ["127.0.0.1:$(cat "$work/http-port")"]
  - job_name: prelude-tls
    scheme: https
    tls_config: { ca_file: "$work/certs/ca.pem", server_name: localhost }
    authorization: { credentials_file: "$work/pool.secret" }
    static_configs:
      - targets: ["127.0.0.1:$(cat "$work/tls-http-port")"]
YML
head -1 "$work/pool.token" > "$work/pool.secret"
check "promtool check config passes" promtool check config "$work/prometheus.yml" > /dev/null
setsid prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom-data" \
  --web.listen-address="127.0.0.1:$prom_port" >> "$work/prom.log" 2>&1 &
pids+=($!)

# query PROMQL: the value of its single sample, or nothing.
query() {
  curl -sf --get "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1" |
    "$PY" -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if len(r)==1 else "")' \
      2> /dev/null
}
# query_is SECONDS PROMQL VALUE: until the query answers VALUE.
query_is() {
  local v
  for _ in $(seq $(($1 * 4))); do v=$(query "$2"); [[ $v == "$3" ]] && return 0; sleep 0.25; done
  echo "  $2 = '$v', expected $3"
  return 1
}
check "Prometheus scrapes: prelude_queue_depth is $N" query_is 30 'prelude_queue_depth{job="prelude"}' $N
check "Prometheus: the target is up" query_is 5 'up{job="prelude"}' 1
check "Prometheus: the TLS target, with a pool token, is up" query_is 10 'up{job="prelude-tls"}' 1
check "Prometheus: its queue is empty" query_is 5 'prelude_queue_depth{job="prelude-tls"}' 0
check "Prometheus: $N submits counted OK" query_is 5 'prelude_rpc_requests_total{job="prelude",method="SubmitJob",code="OK"}' $N
check "Prometheus: the submit latency histogram has $N calls" \
  query_is 5 'prelude_rpc_duration_seconds_count{job="prelude",method="SubmitJob"}' $N
"$CLIENT" cancel "${ids[0]}" > /dev/null
check "after a cancel: prelude_queue_depth is $((N - 1))" query_is 10 'prelude_queue_depth{job="prelude"}' $((N - 1))
check "after a cancel: one CANCELLED job" query_is 10 'prelude_jobs{job="prelude",state="CANCELLED"}' 1
check "no pools" query_is 5 'sum(prelude_pools{job="prelude"})' 0

echo "$passes passed, $failures failed"
((failures == 0)) || { fail_dump; exit 1; }
