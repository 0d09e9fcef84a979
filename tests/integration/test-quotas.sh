#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The server's quotas and bounded answers, with the real nixprov serve on 127.0.0.1: a pending
# device that floods it with 1,000 reports of 261 KB keeps only its newest few; a machine's
# history is trimmed to its cap and counted; listings and histories come in pages that
# nixprov fleet follows; what a device wrote reaches neither the operator's terminal nor the
# server's log as control characters or bidi overrides.
. "$(dirname "$0")/lib.sh"

SIGN=${NIXPROV_TEST_TOOLS:-$BIN/../tests}/device-sign
[ -x "$SIGN" ] || die "no $SIGN (build with NIXPROV_TESTS=ON)"
FLOOD=$SRC/tests/integration/flood.py
DB=$TMP/data/nixprov.db

P=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa # pending: the flood
A=bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb # approved by the policy: the history cap and pages
E=cccccccccccccccccccccccccccccccc # pending: hostile text
mkdir -p data dev/p dev/a dev/e
echo "profile: default" > data/default.yaml
echo "sig: default" > data/default.yaml.minisig
approve_machines "$A"

# The operator's side, in one place: the endpoints and nixprov fleet.
operator_get() { # operator_get PATH: the answer in answer.json, its status in $status
  status=$(operator_curl "$1" -S -o answer.json -w '%{http_code}')
}
fleet() { operator_fleet "$@"; }

# check EXPR DESC: EXPR, Python over d (answer.json), must hold.
check() {
  python3 -c 'import json, sys; d = json.load(open("answer.json")); sys.exit(0 if eval(sys.argv[1]) else 1)' "$1" ||
    { head -c 2000 answer.json >&2; echo >&2; die "$2: $1 is false"; }
}

device() { python3 "$FLOOD" "$1" "$SIGN" "dev/$2" "$SERVER_PORT" "${@:3}"; }

# The rate of a pending machine's reports is tried below, on its own.
start_server data "$DB" --history-reports 10 --pending-rate 1000000
[ "$(device enroll p "$P" flood-p)" = pending ] || die "P did not enroll as pending"
[ "$(device enroll a "$A" edge-a)" = approved ] || die "A was not approved by the policy"

# --- the issue's case: 1,000 reports of 261 KB from a pending machine --------------------------

[ "$(device reports p "$P" 1 1000 261000)" = 1000 ] || die "the flood was not answered 200 each time"
operator_get "/v1/machines/$P"
[ "$status" = 200 ] || die "GET /v1/machines/P: $status"
check 'd["reports"] and [r["seq"] for r in d["reports"]] == [996, 997, 998, 999, 1000]' "P keeps its newest 5"
check 'd["reports_total"] == 5 and d["reports_trimmed"] == 995 and d["next"] is None' "P's counts"
stored=$(python3 -c 'import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
print(db.execute("SELECT COUNT(*), SUM(length(CAST(body AS BLOB))) FROM reports WHERE machine_id = ?", (sys.argv[2],)).fetchone())' "$DB" "$P")
case $stored in "(5, "13[0-9][0-9][0-9][0-9][0-9]")") ;; *) die "the database holds $stored reports/bytes of P" ;; esac
ok "a pending machine's 1,000 reports of 261 KB: 200 each, 5 kept in the database ($stored), 995 counted as trimmed"

# --- an approved machine: the history cap, and pages ------------------------------------------

[ "$(device reports a "$A" 1 12 0)" = 12 ] || die "A's reports"
operator_get "/v1/machines/$A"
check '[r["seq"] for r in d["reports"]] == list(range(3, 13)) and d["reports_trimmed"] == 2' "A's cap"
ok "an approved machine keeps its newest --history-reports (10) and counts the 2 trimmed"

operator_get "/v1/machines/$A?limit=4"
check '[r["seq"] for r in d["reports"]] == [3, 4, 5, 6] and d["truncated"] and isinstance(d["next"], str)' "page 1"
seqs=$(python3 -c 'import json; print(json.load(open("answer.json"))["next"])')
operator_get "/v1/machines/$A?limit=4&cursor=$seqs"
check '[r["seq"] for r in d["reports"]] == [7, 8, 9, 10] and d["next"]' "page 2"
seqs=$(python3 -c 'import json; print(json.load(open("answer.json"))["next"])')
operator_get "/v1/machines/$A?limit=4&cursor=$seqs"
check '[r["seq"] for r in d["reports"]] == [11, 12] and d["next"] is None and not d["truncated"]' "page 3"
ok "GET /v1/machines/ID?limit=4 answers 3 pages, each with the next cursor, the last with null"

for bad in "limit=0" "limit=x" "limit=-1"; do
  operator_get "/v1/machines/$A?$bad"
  [ "$status" = 400 ] || die "?$bad: $status"
  check 'd["error"] == "invalid limit '"'${bad#limit=}'"': expected a number from 1 (at most 1000 are answered)"' "?$bad"
done
operator_get "/v1/machines/$A?cursor=abc"
check 'd["error"] == "invalid cursor: expected the \"next\" of the page before"' "a bad cursor"
operator_get "/v1/machines?cursor=12"
[ "$status" = 400 ] || die "a listing's cursor that is no machine id: $status"
ok "a bad limit or cursor -> 400 with the reason"

# --- the rate of a pending machine's reports ----------------------------------------------------

stop_server
start_server data "$DB" --history-reports 10 --pending-rate 3
# 7 in well under a minute: at most 3 in each of at most two minutes.
device answers p "$P" 1001 7 0 > answer.json || die "P's reports at --pending-rate 3"
check 'd.get("200", 0) in range(3, 7) and d["429"] == 7 - d.get("200", 0)' "P's rate"
check 'json.loads(d["429 body"]) == {"error": "machine '$P' is pending: at most 3 reports a minute are taken until an operator approves it"}' "the 429"
[ "$(device reports a "$A" 13 7 0)" = 7 ] || die "A, approved, is not held to the pending rate"
ok "a pending machine past --pending-rate 3 a minute -> 429 with the reason; an approved one is not limited"

# --- hostile text -------------------------------------------------------------------------------

# RLO ... PDF around a reversed name, an LRI, a zero-width space, a C1 CSI, and a BOM.
HOSTILE=$(printf 'evil\u202egnp.exe\u202c\u2066x\u200by\u009b31mz\ufeff')
[ "$(device enroll e "$E" "$HOSTILE")" = pending ] || die "E did not enroll"
python3 -c '
import sys
sys.path.insert(0, sys.argv[1])
import flood
tool, dev, port, machine = sys.argv[2:6]
msg = "ok\x1b]0;owned\x07 \u202eredro\u202c \u0085next \u2028line end"
s, b = flood.Client(int(port)).request("POST", "/v1/reports", flood.report(tool, dev, machine, 1, message=msg))
sys.exit(0 if s == 200 else 1)' "$SRC/tests/integration" "$SIGN" dev/e "$SERVER_PORT" "$E" || die "E's report was refused"

# The operator's listing, in pages of 2 (3 machines), and E's history.
fleet --limit 2 > fleet.out || die "nixprov fleet --limit 2"
for m in "$P" "$A" "$E"; do grep -q "^$m " fleet.out || die "nixprov fleet --limit 2 does not list $m"; done
[ "$(grep -c '^[0-9a-f]\{32\} ' fleet.out)" = 3 ] || die "nixprov fleet --limit 2: not 3 rows"
fleet --limit 3 "$A" > fleet-a.out || die "nixprov fleet --limit 3 A"
[ "$(grep -Ec '^[0-9]+ +[0-9]{4}-' fleet-a.out)" = 10 ] || { cat fleet-a.out >&2; die "nixprov fleet A: not 10 reports"; }
grep -q ", 10 reports (9 older trimmed by the server's quota)," fleet-a.out || die "nixprov fleet A: no trimmed count"
fleet --limit 2 --json > answer.json || die "nixprov fleet --json"
check 'isinstance(d, list) and sorted(m["machine_id"] for m in d) == ["'$P'", "'$A'", "'$E'"]' "fleet --json joins the pages"
ok "nixprov fleet follows the pages (--limit 2 and 3): 3 machines, 10 reports, one JSON array"

fleet "$E" > fleet-e.out || die "nixprov fleet E"
cat fleet.out fleet-e.out answer.json server.log > shown.out
# No byte of an ESC, a C1 control, a bidi control or invisible formatting; the text around stays.
python3 -c '
import sys
data = open(sys.argv[1], "rb").read()
text = data.decode("utf-8")  # invalid UTF-8 would raise
bad = [c for c in text if c in "\x1b\x07" or 0x80 <= ord(c) <= 0x9f or 0x200b <= ord(c) <= 0x200f or 0x2028 <= ord(c) <= 0x202e or 0x2066 <= ord(c) <= 0x2069 or c == "\ufeff"]
sys.exit("unsafe characters shown: %r" % bad if bad else 0)' shown.out
grep -q '^'"$E"'  *pending  *evil?gnp\.exe?' fleet.out || { cat fleet.out >&2; die "E's hostname is not shown with '?'"; }
grep -q '?redro? ?next ?line ' fleet-e.out || { cat fleet-e.out >&2; die "E's message is not shown with '?'"; }
grep -qF "Machine $E (evil?gnp.exe??x?y?31mz?) enrolled: pending" server.log ||
  { cat server.log >&2; die "the server's log does not show E's hostname with '?'"; }
ok "a hostname and message with ESC, C1, bidi overrides and isolates, zero-width and BOM: '?' in nixprov fleet and the server's log"

# --- the pending cap, its metric, and nixprov purge ---------------------------------------------

# P and E are pending: with --pending-max 3 one more may wait, the next is refused.
stop_server
start_server data "$DB" --pending-max 3
N1=dddddddddddddddddddddddddddddddd
N2=eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee
mkdir -p dev/n1 dev/n2
[ "$(device enroll n1 "$N1" n1)" = pending ] || die "N1 did not enroll as the third pending machine"
status=$(curl -sS --noproxy '*' -o answer.json -w '%{http_code}' -H 'Content-Type: application/json' \
  --data-binary "$(python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import flood
sys.stdout.buffer.write(flood.enrollment(*sys.argv[2:]))' "$SRC/tests/integration" "$SIGN" dev/n2 "$N2" n2)" \
  "$SERVER_URL/v1/enroll")
[ "$status" = 503 ] || die "a fourth pending machine: HTTP $status"
check 'd == {"error": "too many machines are waiting for an operator'"'"'s approval (3): try again later"}' "the 503"
operator_get "/v1/machines/$N2"
[ "$status" = 404 ] || die "the refused machine was stored: $status"
[ "$(device enroll p "$P" flood-p)" = pending ] || die "P, pending already, may enroll again"
operator_get /metrics
grep -qx 'nixprov_enrollments_refused_total{reason="pending-max"} 1' answer.json || die "no refusal counted: $(cat answer.json)"
grep -qx 'nixprov_machines_enrollment{state="pending"} 3' answer.json || die "pending machines not 3"
grep -qF "Machine $N2 (n2) refused: 3 machines are pending already (--pending-max)." server.log || die "the refusal is not logged"
ok "--pending-max 3: a fourth pending machine -> 503 with the reason, not stored, counted in /metrics and logged"

# Make P and N1 stale (last seen 8 days ago); E stays fresh, A is approved.
stop_server
python3 -c 'import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE machines SET last_seen = ? WHERE machine_id IN (?, ?, ?)", (int(time.time()) - 8 * 86400, *sys.argv[2:]))
db.commit()' "$DB" "$P" "$N1" "$A"
expect_exit purge-usage 2 "$BIN/nixprov" purge --pending-older-than 7x --db "$DB"
expect_grep purge-usage "--pending-older-than must be a duration such as 7d, 12h, 30m or 3600, not '7x'."
expect_exit purge-no-db 1 "$BIN/nixprov" purge --pending-older-than 7d --db "$TMP/no-such.db"
[ ! -e "$TMP/no-such.db" ] || die "nixprov purge made a database"
expect_exit purge-dry 0 "$BIN/nixprov" purge --pending-older-than 7d --dry-run --db "$DB"
[ "$(cat purge-dry.out)" = "Would purge $P
Would purge $N1
Would purge 2 pending machines last seen more than 604800 s ago." ] || { cat purge-dry.out >&2; die "purge --dry-run"; }
count() { python3 -c 'import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
print(db.execute("SELECT (SELECT COUNT(*) FROM machines), (SELECT COUNT(*) FROM reports)").fetchone())' "$DB"; }
before=$(count)
expect_exit purge 0 "$BIN/nixprov" purge --pending-older-than 7d --data "$TMP/data"
expect_grep purge "Purged 2 pending machines last seen more than 604800 s ago."
after=$(count)
start_server data "$DB"
for m in "$P" "$N1"; do operator_get "/v1/machines/$m"; [ "$status" = 404 ] || die "$m was not purged"; done
for m in "$A" "$E"; do operator_get "/v1/machines/$m"; [ "$status" = 200 ] || die "$m was purged"; done
ok "nixprov purge --pending-older-than 7d: --dry-run lists P and N1 and deletes nothing; then both go with their reports (machines, reports: $before -> $after); A (approved) and E (fresh) stay"

echo "# $checks checks"
