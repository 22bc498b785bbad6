#!/usr/bin/env bash
# TLS end to end on loopback, with certificates from scripts/dev-certs.sh: a job over
# TLS (C++ client, Python client, the coordinator's spawned pool), one over mutual TLS
# (spawned 2-rank pool with a client certificate), and the refusals, each a clear
# message on the client's side while the coordinator keeps serving: a plain-text
# client, a client that trusts another CA, an expired server certificate, a client
# and a pool without a client certificate under mutual TLS. Also the coordinator's
# start-up checks: bad TLS files, and a non-loopback address with neither TLS nor a
# token refused unless --insecure.
#
#   tls_e2e_test.sh COORDINATOR WORKER CLIENT SOURCE_DIR      (exit 77: skipped)
set -uo pipefail
COORD=$1 WORKER=$2 CLIENT=$3 SRC=$4
PY=/usr/bin/python3
command -v openssl > /dev/null || { echo "skipped, because openssl is not installed (scripts/install-deps.sh)"; exit 77; }
source "$(dirname "$0")/lib.sh"
fail_dump() { for log in "$work"/*.log; do echo "--- $log"; tail -20 "$log"; done; }

certs=$work/certs other=$work/other
"$SRC/scripts/dev-certs.sh" "$certs" 2> /dev/null && "$SRC/scripts/dev-certs.sh" "$other" 2> /dev/null \
  || { echo "scripts/dev-certs.sh failed"; exit 1; }
check "dev-certs: keys have mode 600" [ "$(stat -c %a "$certs/server.key" "$certs/client.key" "$certs/ca.key" | sort -u)" = 600 ]
check "dev-certs: the server certificate verifies against its CA" openssl verify -CAfile "$certs/ca.pem" "$certs/server.pem"

# An expired server certificate from the same CA: `openssl ca` takes start and end
# dates in the past (openssl x509 -req only counts days from now).
mkdir "$work/expired" && touch "$work/expired/index.txt" && echo 01 > "$work/expired/serial"
cat > "$work/expired/ca.cnf" <<EOF
[ca]
default_ca = dev
[dev]
database = $work/expired/index.txt
new_certs_dir = $work/expired
serial = $work/expired/serial
default_md = sha256
policy = any
x509_extensions = ext
[any]
commonName = supplied
[ext]
basicConstraints = critical,CA:FALSE
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
EOF
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout "$work/expired/server.key" -out "$work/expired/server.csr" 2> /dev/null
openssl ca -batch -config "$work/expired/ca.cnf" -cert "$certs/ca.pem" -keyfile "$certs/ca.key" -notext \
  -in "$work/expired/server.csr" -out "$work/expired/server.pem" -startdate 20200101000000Z -enddate 20200201000000Z \
  > /dev/null 2>&1 || { echo "openssl ca could not make the expired certificate"; exit 1; }

cat > "$work/quick.json" <<'JOB'
{ "name": "tls-quick",
  "dataset": { "name": "fashion-mnist", "trainLimit": 1024, "testLimit": 500 },
  "training": { "epochs": 1, "batchSize": 64, "logEverySteps": 8 } }
JOB

start() {  # start NAME FLAGS...: a coordinator on 127.0.0.1, its pid in $coord_pid, port in $port
  local name=$1; shift
  setsid "$COORD" --listen 127.0.0.1:0 --port-file "$work/$name.port" --db "$work/$name.db" "$@" \
    > "$work/$name.log" 2>&1 &
  coord_pid=$!
  pids+=("$coord_pid")
  for _ in $(seq 100); do [[ -s "$work/$name.port" ]] && break; sleep 0.1; done
  [[ -s "$work/$name.port" ]] || { echo "coordinator $name did not start"; fail_dump; exit 1; }
  port=$(cat "$work/$name.port")
}
alive() { kill -0 "$1" 2> /dev/null; }
# refused NAME FILE PATTERN: the call in FILE exited 3 and its message matches PATTERN.
refused() { [[ $(cat "$work/$1.rc") -eq 3 ]] && grep -q -- "$3" "$2"; }
run() {  # run NAME CMD...: output in $work/NAME.out, exit code in $work/NAME.rc
  local name=$1; shift
  timeout 60 "$@" > "$work/$name.out" 2>&1
  echo $? > "$work/$name.rc"
}
state() { "$PY" -c "import json,sys; print(json.load(sys.stdin).get('state', ''))"; }

# ---- TLS: the spawned pool (1 rank) connects with --pool-tls-ca, clients with --tls-ca
start tls --tls-cert "$certs/server.pem" --tls-key "$certs/server.key" --spawn-workers 1 --pool-tls-ca "$certs/ca.pem"
tls_pid=$coord_pid tls_port=$port
check "the coordinator says it serves TLS" grep -q "serving on 127.0.0.1:$port .*, TLS)" "$work/tls.log"
id=$("$CLIENT" --coordinator "127.0.0.1:$port" --tls-ca "$certs/ca.pem" submit "$work/quick.json")
check "TLS: submit prints a job id" [ -n "$id" ]
run watch "$CLIENT" --coordinator "127.0.0.1:$port" --tls-ca "$certs/ca.pem" watch "$id"
check "TLS: the job ran on the spawned pool and SUCCEEDED" \
  bash -c "[[ \$(cat '$work/watch.rc') -eq 0 ]] && grep -q SUCCEEDED '$work/watch.out'"
check "its pool was started with --tls-ca" grep -q "prelude-worker serve .* --tls-ca $certs/ca.pem" "$work/tls.log"
check "TLS: the client by PRELUDE_TLS_CA and localhost (the certificate names both)" \
  bash -c "PRELUDE_TLS_CA='$certs/ca.pem' '$CLIENT' --coordinator 'localhost:$port' get '$id' | grep -q SUCCEEDED"
"$PY" "$SRC/examples/python/prelude_client.py" --coordinator "127.0.0.1:$port" --tls-ca "$certs/ca.pem" get "$id" \
  > "$work/py.out" 2>&1
check "TLS: the Python client reads the job" [ "$(state < "$work/py.out")" = SUCCEEDED ]
PRELUDE_TLS_CA="$certs/ca.pem" "$PY" "$SRC/examples/python/prelude_client.py" --coordinator "127.0.0.1:$port" health \
  > "$work/pyhealth.out" 2>&1
check "TLS: the Python client's health check by PRELUDE_TLS_CA" grep -qx SERVING "$work/pyhealth.out"

run plain "$CLIENT" --coordinator "127.0.0.1:$port" list
check "a plain-text client is refused (exit 3) and told to use TLS" \
  refused plain "$work/plain.out" "if the coordinator serves TLS, connect with --tls-ca FILE or --tls"
run otherca "$CLIENT" --coordinator "127.0.0.1:$port" --tls-ca "$other/ca.pem" list
check "a client that trusts another CA is refused, naming the CA file" \
  refused otherca "$work/otherca.out" "does not verify against the CA in --tls-ca $other/ca.pem"
run sysroots "$CLIENT" --coordinator "127.0.0.1:$port" --tls list
check "a client with the system's CAs only is refused too" refused sysroots "$work/sysroots.out" "the system's CAs"
run pyplain "$PY" "$SRC/examples/python/prelude_client.py" --coordinator "127.0.0.1:$port" health
check "the Python client in plain text is refused (exit 3) and told to use TLS" \
  refused pyplain "$work/pyplain.out" "give --tls-ca FILE or --tls"
run badca "$CLIENT" --coordinator "127.0.0.1:$port" --tls-ca "$certs/server.key" list
check "a CA file without a certificate: exit 2 naming the flag and file" \
  bash -c "[[ \$(cat '$work/badca.rc') -eq 2 ]] && grep -q -- '--tls-ca $certs/server.key: holds no PEM certificate' '$work/badca.out'"
check "after all that the TLS coordinator is alive and serving" \
  bash -c "kill -0 $tls_pid && '$CLIENT' --coordinator 127.0.0.1:$tls_port --tls-ca '$certs/ca.pem' list > /dev/null"

# ---- mutual TLS, with a token too: the spawned 2-rank pool shows its client certificate
echo tls-e2e-token > "$work/token"
start mtls --tls-cert "$certs/server.pem" --tls-key "$certs/server.key" --tls-client-ca "$certs/ca.pem" \
  --token-file "$work/token" --spawn-workers 2 \
  --pool-tls-ca "$certs/ca.pem" --pool-tls-cert "$certs/client.pem" --pool-tls-key "$certs/client.key"
mtls_pid=$coord_pid
mtls=(--coordinator "127.0.0.1:$port" --token-file "$work/token" --tls-ca "$certs/ca.pem")
run mwatch "$CLIENT" "${mtls[@]}" --tls-cert "$certs/client.pem" --tls-key "$certs/client.key" \
  submit "$work/quick.json" --watch
check "mutual TLS: the job ran on the spawned 2-rank pool and SUCCEEDED" \
  bash -c "[[ \$(cat '$work/mwatch.rc') -eq 0 ]] && grep -q SUCCEEDED '$work/mwatch.out'"
# (Logged once the pool is started, after the port file: checked once the job ran.)
check "its pool was started by mpirun with the client certificate" grep -q \
  "mpirun .*/prelude-worker serve .* --tls-ca $certs/ca.pem --tls-cert $certs/client.pem --tls-key $certs/client.key" \
  "$work/mtls.log"
check "mutual TLS: the client by PRELUDE_TLS_CERT and PRELUDE_TLS_KEY" \
  bash -c "PRELUDE_TLS_CERT='$certs/client.pem' PRELUDE_TLS_KEY='$certs/client.key' '$CLIENT' ${mtls[*]} list | grep -q tls-quick"
"$PY" "$SRC/examples/python/prelude_client.py" --coordinator "127.0.0.1:$port" --token-file "$work/token" \
  --tls-ca "$certs/ca.pem" --tls-cert "$certs/client.pem" --tls-key "$certs/client.key" health > "$work/pym.out" 2>&1
check "mutual TLS: the Python client with its certificate" grep -qx SERVING "$work/pym.out"
run nocert "$CLIENT" "${mtls[@]}" list
check "mutual TLS: a client without a certificate is refused and told to give one" \
  refused nocert "$work/nocert.out" "if it requires client certificates (mutual TLS), give --tls-cert and --tls-key"
run othercert "$CLIENT" "${mtls[@]}" --tls-cert "$other/client.pem" --tls-key "$other/client.key" list
check "mutual TLS: a client certificate from another CA is refused" \
  refused othercert "$work/othercert.out" "may not accept the client certificate in --tls-cert $other/client.pem"
timeout 4 "$WORKER" serve --coordinator "127.0.0.1:$port" --token-file "$work/token" --tls-ca "$certs/ca.pem" \
  > "$work/nocert-pool.out" 2>&1
check "mutual TLS: a pool without a certificate does not register, and says why" \
  bash -c "grep -q 'give --tls-cert and --tls-key' '$work/nocert-pool.out' && ! grep -q registered '$work/nocert-pool.out'"
check "after all that the mutual-TLS coordinator is alive" alive "$mtls_pid"

# ---- an expired server certificate: a warning at start, clients refuse it
start expired --tls-cert "$work/expired/server.pem" --tls-key "$work/expired/server.key"
check "the coordinator warns that its certificate expired" \
  grep -q "warning: --tls-cert $work/expired/server.pem: the certificate expired on Feb  1 00:00:00 2020 GMT" \
  "$work/expired.log"
run expired "$CLIENT" --coordinator "127.0.0.1:$port" --tls-ca "$certs/ca.pem" list
check "a client refuses the expired certificate, saying so" \
  refused expired "$work/expired.out" "the coordinator's certificate (/CN=localhost) expired on Feb  1 00:00:00 2020 GMT"
check "and the coordinator is alive" alive "$coord_pid"

# ---- start-up checks: exit 2 naming the flag (and file)
coord2() {  # coord2 NAME FLAGS...: a coordinator expected to refuse to start
  local name=$1; shift
  timeout 10 "$COORD" --db "$work/$name.db" --port-file "$work/$name.port" "$@" > "$work/$name.out" 2>&1
  echo $? > "$work/$name.rc"
}
exit2() { [[ $(cat "$work/$1.rc") -eq 2 ]] && grep -q -- "$2" "$work/$1.out" && [[ ! -s "$work/$1.port" ]]; }
coord2 mismatch --listen 127.0.0.1:0 --tls-cert "$certs/server.pem" --tls-key "$certs/client.key"
check "a key that is not the certificate's: exit 2 naming both" \
  exit2 mismatch "--tls-key $certs/client.key: is not the private key of the certificate in --tls-cert $certs/server.pem"
coord2 missing --listen 127.0.0.1:0 --tls-cert "$work/none.pem" --tls-key "$certs/server.key"
check "an unreadable certificate: exit 2 naming the flag and file" \
  exit2 missing "--tls-cert $work/none.pem: cannot read: No such file or directory"
coord2 poolca --listen 127.0.0.1:0 --tls-cert "$certs/server.pem" --tls-key "$certs/server.key" --spawn-workers 1 \
  --pool-tls-ca "$other/ca.pem"
check "a spawned pool that would not trust the certificate: exit 2 at start" \
  exit2 poolca "--tls-cert $certs/server.pem: does not verify against the CA in --pool-tls-ca $other/ca.pem"
coord2 any --listen 0.0.0.0:0
check "0.0.0.0 in plain text with no token: exit 2, saying why" \
  exit2 any "--listen 0.0.0.0:0: refusing to serve a non-loopback address in plain text with no token"
coord2 any6 --listen "[::]:0"
check "[::] likewise" exit2 any6 "refusing to serve a non-loopback address"
coord2 anyhttp --listen 127.0.0.1:0 --http 0.0.0.0:0
check "the dashboard on 0.0.0.0 in plain text with no token: exit 2, naming what it would expose" \
  exit2 anyhttp "--http 0.0.0.0:0: refusing to serve the dashboard, its API (jobs, logs, models) and the metrics"
start insecure --listen 0.0.0.0:0 --insecure
check "0.0.0.0 with --insecure serves" alive "$coord_pid"
start anytls --listen 0.0.0.0:0 --tls-cert "$certs/server.pem" --tls-key "$certs/server.key"
check "0.0.0.0 with TLS serves, and a TLS client reaches it on 127.0.0.1" \
  "$CLIENT" --coordinator "127.0.0.1:$port" --tls-ca "$certs/ca.pem" list
start loopback --listen 127.0.0.2:0
check "127.0.0.2 in plain text with no token serves (127.0.0.0/8 is loopback)" alive "$coord_pid"

check "no coordinator crashed (no signal in any log)" bash -c "! grep -l 'Segmentation\|Aborted\|core dumped' '$work'/*.log"
echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]] || { fail_dump; exit 1; }
