#!/usr/bin/env bash
# Tokens, roles and ownership end to end on loopback: `token add` makes the tokens
# (their hashes only in the file), a coordinator with --tokens-file and a spawned pool
# (which gets a pool token of its own) trains a user's job; another user is told the
# job does not exist; a pool token cannot use the job API and a user token cannot be
# a pool; a token removed from the file stops working within seconds, without a
# restart; no token ever reaches the coordinator's log.
#
#   tokens_e2e_test.sh COORDINATOR WORKER CLIENT
set -uo pipefail
COORD=$1 WORKER=$2 CLIENT=$3
PY=/usr/bin/python3
source "$(dirname "$0")/lib.sh"
fail_dump() { for log in "$work"/*.log; do echo "--- $log"; tail -20 "$log"; done; }

tokens=$work/tokens
for who in alice:user bob:user ops:admin extpool:pool; do
  "$COORD" token add "${who%%:*}" --role "${who#*:}" --tokens-file "$tokens" > "$work/${who%%:*}.token" \
    2> "$work/token-add.log" || { echo "token add ${who%%:*} failed"; cat "$work/token-add.log"; exit 1; }
done
check "token add: the tokens file is owner-only" [ "$(stat -c %a "$tokens")" = 600 ]
check "token add: each token printed once, 'prl_' and 64 hex digits" \
  bash -c "[ \$(cat '$work'/{alice,bob,ops,extpool}.token | grep -cE '^prl_[0-9a-f]{64}$') -eq 4 ]"
check "token add: the file holds no token, only hashes" \
  bash -c "! grep -qF -f <(cut -c5- '$work/alice.token') '$tokens' && grep -c '^sha256:' '$tokens' | grep -qx 4"
"$COORD" token add alice --role user --tokens-file "$tokens" > /dev/null 2> "$work/dup.log"; rc=$?
check "token add: a name taken is exit 2 naming it" bash -c "[ $rc -eq 2 ] && grep -q 'alice is taken' '$work/dup.log'"
"$COORD" token list --tokens-file "$tokens" > "$work/list.txt"
check "token list: names and roles" bash -c "grep -qE '^alice +user' '$work/list.txt' && grep -qE '^extpool +pool' '$work/list.txt'"

setsid "$COORD" --listen 127.0.0.1:0 --port-file "$work/port" --db "$work/jobs.db" --tokens-file "$tokens" \
  --spawn-workers 1 --heartbeat-timeout 5 > "$work/coord.log" 2>&1 &
coord_pid=$!
pids+=("$coord_pid")
for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.1; done
[[ -s "$work/port" ]] || { echo "the coordinator did not start"; fail_dump; exit 1; }
export PRELUDE_COORDINATOR=127.0.0.1:$(cat "$work/port")
as() { local who=$1; shift; "$CLIENT" --token-file "$work/$who.token" "$@"; }
field() {  # field WHO ID NAME
  as "$1" get "$2" --format json | "$PY" -c "import json,sys; print(json.load(sys.stdin).get('$3', ''))"
}

cat > "$work/quick.json" <<'JOB'
{ "name": "tokens-quick",
  "dataset": { "name": "fashion-mnist", "trainLimit": 512, "testLimit": 200 },
  "training": { "epochs": 1, "batchSize": 64, "logEverySteps": 4 } }
JOB
id=$(as alice submit "$work/quick.json")
check "alice submits a job" [ -n "$id" ]
as alice watch "$id" > "$work/watch.txt"; rc=$?
check "the spawned pool (its own pool token, leases) trains it to SUCCEEDED" \
  bash -c "[ $rc -eq 0 ] && grep -q SUCCEEDED '$work/watch.txt'"
check "the job is alice's" [ "$(field alice "$id" owner)" = alice ]
check "its final model was uploaded under the lease" \
  bash -c "'$CLIENT' --token-file '$work/alice.token' checkpoints '$id' --format json | grep -qE '\"final\": ?true'"

as bob get "$id" > /dev/null 2> "$work/bob-get.err"; rc=$?
check "bob: alice's job is NOT_FOUND, as an unknown one" \
  bash -c "[ $rc -eq 3 ] && grep -q 'NOT_FOUND: job .$id. does not exist' '$work/bob-get.err'"
as bob get job-999999 > /dev/null 2> "$work/bob-unknown.err"
check "bob: the same words for a job that does not exist" \
  bash -c "diff <(sed 's/$id/ID/' '$work/bob-get.err') <(sed 's/job-999999/ID/' '$work/bob-unknown.err')"
as bob download "$id" -o "$work/stolen.ckpt" > /dev/null 2>&1; rc=$?
check "bob cannot download it" bash -c "[ $rc -eq 3 ] && [ ! -e '$work/stolen.ckpt' ]"
check "bob's list does not show it" bash -c "! '$CLIENT' --token-file '$work/bob.token' list | grep -q '$id'"
check "the admin sees it" [ "$(field ops "$id" owner)" = alice ]

as extpool list > /dev/null 2> "$work/pool-list.err"; rc=$?
check "a pool token on the job API: PERMISSION_DENIED" \
  bash -c "[ $rc -eq 3 ] && grep -q 'PERMISSION_DENIED' '$work/pool-list.err'"
timeout 30 "$WORKER" serve --token-file "$work/alice.token" --quiet > "$work/user-pool.log" 2>&1; rc=$?
check "a user token cannot be a pool: the worker exits, saying why" \
  bash -c "[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q 'PERMISSION_DENIED' '$work/user-pool.log'"

"$COORD" token remove bob --tokens-file "$tokens" 2> /dev/null
gone=0
for _ in $(seq 50); do
  as bob list > /dev/null 2> "$work/bob-removed.err" || { grep -q UNAUTHENTICATED "$work/bob-removed.err" && { gone=1; break; }; }
  sleep 0.1
done
check "a removed token is refused within 5 s, without a restart" [ "$gone" = 1 ]
check "alice's token still works" as alice get "$id" > /dev/null

as ops audit --format json > "$work/audit.json" 2> "$work/audit.err"
check "the audit trail has alice's submit of $id" \
  grep -qE '"user": ?"alice".*"action": ?"submit".*"target": ?"'"$id"'".*"outcome": ?"ok"' "$work/audit.json"
check "and the removed token's refusal, and the pools' registrations" \
  bash -c "grep -q '\"token-refused\"' '$work/audit.json' && grep -qE '\"action\": ?\"register-pool\"' '$work/audit.json'"
as alice audit > /dev/null 2> "$work/alice-audit.err"; rc=$?
check "a user may not read the audit trail: PERMISSION_DENIED" \
  bash -c "[ $rc -eq 3 ] && grep -q PERMISSION_DENIED '$work/alice-audit.err'"
check "the coordinator is still up" kill -0 "$coord_pid"
check "no token reached the coordinator's log" \
  bash -c "! grep -qF -f <(cat '$work'/{alice,bob,ops,extpool}.token) '$work/coord.log' && ! grep -q 'prl_' '$work/coord.log'"
echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]] || { fail_dump; exit 1; }
