#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Long-poll: nixprov serve holds GET .../profile?wait=N with If-None-Match until a new profile is
# published for the machine (inotify on the data directory) or the wait ends (304), at most
# --max-waiters at once; nixprov-agent watch keeps one such request open and applies each new
# serial as it arrives, with no other trigger, and stops cleanly on SIGTERM.
source "$(dirname "$0")/lib.sh"

AGENT=$BIN/nixprov-agent
MACHINE=4c4c4544004d3510804fb4c04f4d3732
OTHER=0123456789abcdef0123456789abcdef
STATE=root/var/lib/nixprov
curl() { nixprov_curl "$@"; } # with the device's proof and the operator's token

mkdir -p data/machines data/groups root/etc
echo "$MACHINE" > root/etc/machine-id
cat > rebuild <<EOF
#!/bin/sh
echo "\$*" >> $TMP/rebuild.calls
EOF
chmod +x rebuild

publish() { # publish SERIAL: written into the served directory, then signed there by nixprov sign
  local f=data/machines/$MACHINE.yaml
  printf 'nixprov: 1\nserial: %s\nexpires: 2099-01-01T00:00:00Z\nmachines: [%s]\n' "$1" "$MACHINE" > "$f"
  printf 'strategy: binary-caches\nnix:\n  settings:\n    substituters: []\n' >> "$f"
  "$BIN/nixprov" sign -s "$KEYS/fleet.sec" -t "serial $1" "$f" >/dev/null
}
{
  echo "server: {urls: [URL], deadline: 10, connect-timeout: 2}"
  echo "trusted-keys: [$(tail -n 1 "$KEYS/fleet.pub")]"
  echo "rebuild: {command: $TMP/rebuild}"
  echo "enroll: {wait: 0}"
} > agent.yaml.in
metric() { curl -fs --noproxy '*' "$SERVER_URL/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
wait_until() { # wait_until WHAT CMD...: up to 60 s for CMD to succeed
  local what=$1 _
  shift
  for _ in $(seq 600); do "$@" && return 0; sleep 0.1; done
  die "$what did not happen within 60 s"
}
applied() { grep -q "^serial $1\$" "$STATE/applied" 2>/dev/null; }
waiters_are() { [ "$(metric nixprov_profile_waiters)" = "$1" ]; }
history() { curl -fs --noproxy '*' "$SERVER_URL/v1/machines/$MACHINE" > history.json; }

approve_machines "$MACHINE" "$OTHER"
start_server "$TMP/data" "$TMP/server.db" --max-waiters 2
sed "s|URL|$SERVER_URL|" agent.yaml.in > agent.yaml
publish 1

# --- nixprov-agent watch: the first profile, then a wait held open -----------------------------
"$AGENT" watch --config agent.yaml --root root --cmdline - --wait 30 > watch.log 2>&1 &
WATCH_PID=$!
at_exit "kill $WATCH_PID 2>/dev/null; wait $WATCH_PID 2>/dev/null"
wait_until "serial 1 applied" applied 1
wait_until "a held request" waiters_are 1
[ "$(wc -l < rebuild.calls)" = 1 ] || die "rebuild calls: $(cat rebuild.calls)"
ok "watch: serial 1 applied, then one request held at the server (nixprov_profile_waiters 1)"

# --- publishing serial 2 is applied by the device with nothing else triggering it ---------------
waits=$(metric nixprov_profile_waits_total)
publish 2
wait_until "serial 2 applied" applied 2
final_report_of() {
  curl -fs --noproxy '*' "$SERVER_URL/v1/machines/$MACHINE" |
    jq -e "[.reports[] | select(.phase == \"done\" and .serial == $1 and .status == \"ok\")] | length == 1" >/dev/null
}
wait_until "the final report of serial 2" final_report_of 2
history
jq -e '[.reports[] | select(.phase == "done" and .serial == 2)] | last | .message == "provisioned at serial 2"' \
  history.json >/dev/null || die "final report: $(jq -c '.reports | last' history.json)"
[ "$(wc -l < rebuild.calls)" = 2 ] || die "rebuild calls: $(cat rebuild.calls)"
grep -q '^serial 2$' "$STATE/profile.etag" || die "the tag of serial 2 is not kept"
wait_until "a new held request" waiters_are 1
[ "$(metric nixprov_profile_waits_total)" -gt "$waits" ] || die "no wait counted"
ok "watch: publishing serial 2 (nixprov sign in the served directory) is applied, reported done, and the next wait starts"

# Another machine's profile changing wakes the waiter, which finds its own unchanged and waits on.
printf 'nixprov: 1\nserial: 1\nexpires: 2099-01-01T00:00:00Z\nmachines: [%s]\nstrategy: source\n' "$OTHER" \
  > "data/machines/$OTHER.yaml"
"$BIN/nixprov" sign -s "$KEYS/fleet.sec" "data/machines/$OTHER.yaml" >/dev/null
sleep 1 # the settle time and a re-check, at least
waiters_are 1 || die "the waiter did not wait on after another machine's change"
[ "$(wc -l < rebuild.calls)" = 2 ] || die "another machine's profile made this one rebuild"
ok "another machine's new profile: the waiter re-checks its own and waits on, no run"

# --- SIGTERM: the held request is cut short, the agent exits 0 ----------------------------------
kill -TERM "$WATCH_PID"
rc=0
wait "$WATCH_PID" || rc=$?
[ "$rc" = 0 ] || { cat watch.log >&2; die "watch exited $rc on SIGTERM"; }
grep -q "Stopped by a signal." watch.log || die "no clean stop: $(tail -n 5 watch.log)"
wait_until "the waiter gone" waiters_are 0
ok "watch: SIGTERM cuts the wait short; exit 0"

# --- the server by hand: the wait's end is a 304; --max-waiters bounds the held requests --------
URL=$SERVER_URL/v1/machines/$MACHINE/profile
tag=$(curl -fsI --noproxy '*' "$URL" | tr -d '\r' | awk 'tolower($1) == "etag:" {print $2}')
code=$(curl -s --noproxy '*' -o body.out -w '%{http_code}' -H "If-None-Match: $tag" "$URL?wait=1")
[ "$code" = 304 ] && [ ! -s body.out ] || die "the end of a wait: $code $(cat body.out)"
ok "a held request whose wait ends unchanged is answered 304 without a body"

for i in 1 2; do
  curl -s --noproxy '*' -o "held-$i.out" -w '%{http_code}' -H "If-None-Match: $tag" "$URL?wait=60" > "held-$i.code" &
  echo $! > "held-$i.pid"
done
wait_until "two held requests" waiters_are 2
refused=$(metric nixprov_profile_waits_refused_total)
code=$(curl -s --noproxy '*' -o body.out -w '%{http_code}' -H "If-None-Match: $tag" "$URL?wait=60")
[ "$code" = 304 ] || die "over --max-waiters: $code"
[ "$(metric nixprov_profile_waits_refused_total)" = $((refused + 1)) ] || die "the refusal is not counted"
ok "--max-waiters 2: a third ?wait= request is answered 304 at once, counted as refused"

# A new profile answers both held requests with it.
publish 3
for i in 1 2; do wait "$(cat "held-$i.pid")"; done
for i in 1 2; do
  [ "$(cat "held-$i.code")" = 200 ] && cmp -s "held-$i.out" "data/machines/$MACHINE.yaml" ||
    die "held request $i: $(cat "held-$i.code")"
done
ok "a new profile answers every held request at once with it (200)"

# Stopping the server with held requests: they are answered or closed, the server exits 0.
tag=$(curl -fsI --noproxy '*' "$URL" | tr -d '\r' | awk 'tolower($1) == "etag:" {print $2}')
curl -s --noproxy '*' -o /dev/null -H "If-None-Match: $tag" "$URL?wait=60" &
CURL_PID=$!
wait_until "a held request" waiters_are 1
kill -TERM "$SERVER_PID"
rc=0
wait "$SERVER_PID" || rc=$?
[ "$rc" = 0 ] || die "the server exited $rc with a held request"
wait "$CURL_PID" || true
ok "the server stops cleanly (exit 0) with a request held"

# --- with serve's connection deadlines and limits: a held request has no deadline, and counts
# against its address's limit --------------------------------------------------------------------
log_lines=$(wc -l < "$TMP/server.log")
start_server "$TMP/data" "$TMP/server.db" --max-waiters 2 --head-timeout 1 --body-timeout 1 \
  --max-connections-per-address 1
URL=$SERVER_URL/v1/machines/$MACHINE/profile
tag=$(curl -fsI --noproxy '*' "$URL" | tr -d '\r' | awk 'tolower($1) == "etag:" {print $2}')
curl -s --noproxy '*' --interface 127.0.0.2 -o held.out -w '%{http_code}' -H "If-None-Match: $tag" \
  "$URL?wait=8" > held.code &
HELD_PID=$!
wait_until "a held request from 127.0.0.2" waiters_are 1
code=$(curl -s --noproxy '*' --interface 127.0.0.2 -o /dev/null -w '%{http_code}' "$SERVER_URL/healthz" || true)
[ "$code" = 000 ] || die "a second connection from 127.0.0.2 past --max-connections-per-address 1: $code"
wait "$HELD_PID" || true
[ "$(cat held.code)" = 304 ] && [ ! -s held.out ] ||
  die "a wait longer than --head-timeout 1: $(cat held.code) $(cat held.out)"
tail -n +"$((log_lines + 1))" "$TMP/server.log" | grep 'cut off' && die "a held request was cut off"
ok "--head-timeout 1: a request held 8 s is answered 304, not cut off; it counts against --max-connections-per-address 1"

echo "$checks passed, 0 failed"
