#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Reports: nixprov-agent report and flush against the real nixprov serve (and a recorder and a
# failing server for what the real one cannot show), on 127.0.0.1 only.
source "$(dirname "$0")/lib.sh"
export no_proxy='*' NO_PROXY='*'

AGENT=$BIN/nixprov-agent
M=0123456789abcdef0123456789abcdef
SPOOL=$TMP/spool
DEV=$TMP/device # the device's root: its keys are made in DEV/var/lib/nixprov
mkdir -p data db "$DEV"

server_pid=
start_server() {
  rm -f port
  # The device stays pending: this test is about delivery, the quotas of a pending machine's
  # reports are test-quotas.sh's.
  "$BIN/nixprov" serve --listen 127.0.0.1:0 --data "$TMP/data" --db "$TMP/db/nixprov.db" \
    --pending-reports 1000 --pending-rate 1000000 --port-file "$TMP/port" >>server.out 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    [ -s port ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat server.out >&2; die "server exited during startup"; }
    sleep 0.1
  done
  [ -s port ] || die "server did not write its port file in 10 s"
  server=http://127.0.0.1:$(cat port)
  SERVER_URL=$server OPERATOR_TOKEN_FILE=$TMP/db/operator.token
}
stop_server() {
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=
}
at_exit '[ -n "$server_pid" ] && kill "$server_pid"'

# The seqs the fleet view holds for $M, space-separated, in its order.
fleet_seqs() {
  operator_curl "/v1/machines/$M" -f >machine.json || die "GET /v1/machines/$M failed"
  python3 -c 'import json,sys; print(" ".join(str(r["seq"]) for r in json.load(open(sys.argv[1]))["reports"]))' machine.json
}
spooled() { (cd "$SPOOL" && ls -- *.json 2>/dev/null | tr '\n' ' ' | sed 's/ $//'); }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# --- usage ---------------------------------------------------------------------------------
expect_exit flush-no-server 2 "$AGENT" flush --root "$DEV" --cmdline - --spool "$SPOOL" --machine-id "$M"
expect_grep flush-no-server "No server: give --server URL, or set server.urls in the agent configuration."
ok "flush without --server: usage error (exit 2)"
expect_exit report-bad-phase 2 "$AGENT" report --root "$DEV" --cmdline - --spool "$SPOOL" --machine-id "$M" --phase deploy --status ok
expect_grep report-bad-phase "Unknown --phase 'deploy'."
ok "report with an unknown phase: usage error (exit 2)"
# The shared options in their short forms, as in run: -m with a malformed id is refused before
# anything is written; without --spool and -m, the spool is ROOT/STATE-DIR/reports and the
# machine id ROOT/etc/machine-id.
SHORT=$TMP/short-root
mkdir -p "$SHORT/etc"
echo fedcba9876543210fedcba9876543210 > "$SHORT/etc/machine-id"
expect_exit report-bad-id 2 "$AGENT" report -c "$TMP/none.yaml" -r "$SHORT" --cmdline - -m nothex \
  --phase done --status ok
expect_grep report-bad-id "Failed to identify this machine: the machine id is not 32 hex digits or a UUID"
[ -z "$(ls -A "$SHORT/var" 2>/dev/null)" ] || die "report-bad-id: wrote under $SHORT/var"
expect_exit report-short 0 "$AGENT" report -c "$TMP/none.yaml" -r "$SHORT" --cmdline - --phase done --status ok
expect_grep report-short "Spooled report 1 (done ok) in $SHORT/var/lib/nixprov/reports."
grep -q '"machine_id": *"fedcba9876543210fedcba9876543210"' "$SHORT"/var/lib/nixprov/reports/*.json ||
  die "report-short: the spooled report does not carry ROOT/etc/machine-id"
ok "report -c -r -m: the context's options; a bad -m writes nothing; the spool and id under the root"

# --- (1) server up: a report is stored at once ------------------------------------------
start_server
# The server takes the signed reports of an enrolled device (pending is enough).
printf 'server: {urls: [%s]}\n' "$server" > enroll.yaml
expect_exit enroll 9 "$AGENT" enroll --config enroll.yaml --root "$DEV" --cmdline - --machine-id "$M"
expect_grep enroll "pending: waiting for an operator"
expect_exit report-up 0 "$AGENT" report --root "$DEV" --cmdline - --spool "$SPOOL" --server "$server" --machine-id "$M" \
  --phase fetch --status ok --serial 3 --message "fetched from mirror 1"
expect_grep report-up "Spooled report 1 (fetch ok) in $SPOOL."
expect_grep report-up "Delivered 1 report; 0 pending."
ok "report with the server up: spooled as seq 1 and delivered"
[ "$(fleet_seqs)" = 1 ] || die "fleet view holds seqs '$(fleet_seqs)', expected '1'"
python3 - machine.json <<'EOF' || die "stored report differs"
import json, sys
r = json.load(open(sys.argv[1]))["reports"][0]
assert (r["seq"], r["phase"], r["status"], r["serial"], r["message"]) == \
    (1, "fetch", "ok", 3, "fetched from mirror 1"), r
assert r["machine_id"] == "0123456789abcdef0123456789abcdef" and isinstance(r["time"], int), r
EOF
ok "the server stored seq 1: phase fetch, status ok, serial 3, the message"
[ -z "$(spooled)" ] || die "spool not empty: $(spooled)"
[ "$(stat -c %a "$SPOOL")" = 700 ] || die "spool mode $(stat -c %a "$SPOOL")"
[ "$(cat "$SPOOL/seq")" = 2 ] || die "seq file holds '$(cat "$SPOOL/seq")'"
ok "spool empty (mode 0700); the unused part of the reserved block given back: next seq 2 in $SPOOL/seq"

# --- (2) server down: reports are spooled, quickly; flush delivers them in order ---------
dead=$server
stop_server
total=0
for i in 1 2 3 4 5; do
  t0=$(now_ms)
  # Each command is a run of its own: it makes its one short delivery attempt (--deadline 1).
  expect_exit "report-down-$i" 0 "$AGENT" report --root "$DEV" --cmdline - --spool "$SPOOL" --server "$dead" \
    --machine-id "$M" --phase rebuild --status progress --deadline 1 --message "step $i"
  t=$(($(now_ms) - t0))
  total=$((total + t))
  [ "$t" -lt 3000 ] || die "report $i with the server down took $t ms"
  expect_grep "report-down-$i" "Spooled report $((i + 1)) (rebuild progress) in $SPOOL."
  expect_grep "report-down-$i" "warning: Could not deliver reports now: $dead/v1/reports: "
  expect_grep "report-down-$i" "$i report$([ "$i" = 1 ] || echo s) wait$([ "$i" = 1 ] && echo s) in $SPOOL for the next flush."
done
[ "$total" -lt 10000 ] || die "5 reports with the server down took $total ms"
ok "server down: 5 reports spooled, exit 0, each under 3 s ($total ms in all)"
[ "$(spooled)" = "00000000000000000002.json 00000000000000000003.json 00000000000000000004.json 00000000000000000005.json 00000000000000000006.json" ] ||
  die "spool holds '$(spooled)'"
[ "$(stat -c %a "$SPOOL/00000000000000000002.json")" = 600 ] || die "spooled file not 0600"
ok "the spool holds seqs 2-6, zero-padded, mode 0600"
cp "$SPOOL/00000000000000000002.json" saved-2.json

# The order of delivery, seen by a recorder that answers like the server.
cat >recorder.py <<'EOF'
import http.server, json, os, signal, sys
signal.alarm(60)
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/reports":  # flush enrolls first: not a nixprov server's answer
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with open(sys.argv[2], "a") as f:
            f.write(f"{body['seq']}\n")
        answer = b'{"stored":true,"duplicate":false}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
s = http.server.HTTPServer(("127.0.0.1", 0), H)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(s.server_address[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.serve_forever()
EOF
cp -r "$SPOOL" spool-copy
python3 recorder.py recorder.port recorder.log &
recorder_pid=$!
at_exit "kill $recorder_pid 2>/dev/null"
for _ in $(seq 100); do [ -s recorder.port ] && break; sleep 0.1; done
expect_exit flush-recorder 0 "$AGENT" flush --root "$DEV" --cmdline - --spool "$TMP/spool-copy" --machine-id "$M" \
  --server "http://127.0.0.1:$(cat recorder.port)"
kill "$recorder_pid"
[ "$(tr '\n' ' ' <recorder.log)" = "2 3 4 5 6 " ] || die "delivered in the order '$(cat recorder.log)'"
ok "flush delivers in seq order: 2 3 4 5 6"

start_server
expect_exit flush-up 0 "$AGENT" flush --root "$DEV" --cmdline - --spool "$SPOOL" --server "$server" --machine-id "$M"
expect_grep flush-up "Sent 5 reports (0 already known to the server); 0 pending in $SPOOL."
ok "server back: flush sent 5 reports, exit 0"
[ -z "$(spooled)" ] || die "spool not empty after flush: $(spooled)"
[ "$(fleet_seqs)" = "1 2 3 4 5 6" ] || die "fleet view holds seqs '$(fleet_seqs)'"
ok "spool empty; the fleet view holds each report exactly once: 1 2 3 4 5 6"
expect_exit flush-again 0 "$AGENT" flush --root "$DEV" --cmdline - --spool "$SPOOL" --server "$server" --machine-id "$M"
expect_grep flush-again "Sent 0 reports (0 already known to the server); 0 pending in $SPOOL."
ok "flushing again sends nothing"

# --- (3) a duplicate delivery is accepted and stored once --------------------------------
cp saved-2.json "$SPOOL/00000000000000000002.json"
expect_exit flush-duplicate 0 "$AGENT" flush --root "$DEV" --cmdline - --spool "$SPOOL" --server "$server" --machine-id "$M"
expect_grep flush-duplicate "Sent 1 report (1 already known to the server); 0 pending in $SPOOL."
[ "$(fleet_seqs)" = "1 2 3 4 5 6" ] || die "fleet view holds seqs '$(fleet_seqs)'"
[ -z "$(spooled)" ] || die "spool not empty: $(spooled)"
ok "a report delivered twice is accepted as a duplicate, removed, and stored once"

# --- (4) seqs are never reused -----------------------------------------------------------
for i in 7 8; do
  expect_exit "spool-only-$i" 0 "$AGENT" report --root "$DEV" --cmdline - --spool "$SPOOL" --machine-id "$M" --phase write --status started
  expect_grep "spool-only-$i" "Spooled report $i (write started) in $SPOOL."
  expect_grep "spool-only-$i" "Not sent: no --server given; 'nixprov-agent flush' delivers it"
done
rm "$SPOOL"/*.json
expect_exit after-delete 0 "$AGENT" report --root "$DEV" --cmdline - --spool "$SPOOL" --machine-id "$M" --phase write --status ok
expect_grep after-delete "Spooled report 9 (write ok) in $SPOOL."
ok "after the spooled files are deleted (seq kept), the next report is seq 9, not 7"
expect_exit flush-9 0 "$AGENT" flush --root "$DEV" --cmdline - --spool "$SPOOL" --server "$server" --machine-id "$M"
[ "$(fleet_seqs)" = "1 2 3 4 5 6 9" ] || die "fleet view holds seqs '$(fleet_seqs)'"
ok "the server holds 1-6 and 9"

# --- (5) a corrupt spooled file is moved aside; the rest are delivered --------------------
for i in 10 11 12; do
  expect_exit "spool-$i" 0 "$AGENT" report --root "$DEV" --cmdline - --spool "$SPOOL" --machine-id "$M" --phase rebuild --status started
done
truncate -s 5 "$SPOOL/00000000000000000011.json"
expect_exit flush-corrupt 0 "$AGENT" flush --root "$DEV" --cmdline - --spool "$SPOOL" --server "$server" --machine-id "$M"
expect_grep flush-corrupt "warning: Spooled report $SPOOL/00000000000000000011.json is not a report of its sequence number (truncated or corrupt): moved to $SPOOL/bad/00000000000000000011.json."
expect_grep flush-corrupt "Sent 2 reports (0 already known to the server); 0 pending in $SPOOL."
expect_grep flush-corrupt "Moved 1 unusable report to $SPOOL/bad/."
[ -f "$SPOOL/bad/00000000000000000011.json" ] || die "no bad/00000000000000000011.json"
[ "$(fleet_seqs)" = "1 2 3 4 5 6 9 10 12" ] || die "fleet view holds seqs '$(fleet_seqs)'"
ok "a truncated spooled file goes to bad/; 10 and 12 are delivered"

# --- (6) a server answering 500: reports stay spooled, exit 3 ----------------------------
mkdir www
python3 "$SRC/tests/integration/fault-server.py" fault.port www fault.log 60 &
fault_pid=$!
at_exit "kill $fault_pid 2>/dev/null"
for _ in $(seq 100); do [ -s fault.port ] && break; sleep 0.1; done
fault=http://127.0.0.1:$(tr -d '\n' <fault.port)/500
expect_exit spool-13 0 "$AGENT" report --root "$DEV" --cmdline - --spool "$SPOOL" --machine-id "$M" --phase done --status failed --error "rebuild failed"
expect_exit flush-500 3 "$AGENT" flush --root "$DEV" --cmdline - --spool "$SPOOL" --server "$fault" --machine-id "$M" --deadline 2
expect_grep flush-500 "Sent 0 reports (0 already known to the server); 1 pending in $SPOOL."
expect_grep flush-500 "error: Failed to deliver the spooled reports: $fault/v1/reports: HTTP 500 Internal Server Error (deadline reached). 1 report remains in $SPOOL for a later flush."
[ "$(spooled)" = 00000000000000000013.json ] || die "spool holds '$(spooled)'"
grep -q "^/500/v1/reports " fault.log || die "the failing server saw no report"
ok "server answering 500: exit 3, the report stays spooled, the message names URL and cause"
expect_exit flush-13 0 "$AGENT" flush --root "$DEV" --cmdline - --spool "$SPOOL" --server "$server" --machine-id "$M"
[ "$(fleet_seqs)" = "1 2 3 4 5 6 9 10 12 13" ] || die "fleet view holds seqs '$(fleet_seqs)'"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["reports"][-1]; assert (r["phase"],r["status"],r["error"])==("done","failed","rebuild failed"), r' machine.json ||
  die "seq 13 stored wrong"
ok "delivered later to the real server: seq 13, done failed, with its error"

stop_server
echo "all $checks checks passed"
