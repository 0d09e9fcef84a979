#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# nixprov serve and nixprov fleet, the real programs, on 127.0.0.1 only.
set -euo pipefail

: "${NIXPROV_BIN:?NIXPROV_BIN must name the directory of the built programs}"
NIXPROV="$NIXPROV_BIN/nixprov"
# device-sign: a device's keys and signature, as the agent makes them (tests/tools/).
SIGN="${NIXPROV_TEST_TOOLS:-$NIXPROV_BIN/../tests}/device-sign"
[[ -x $SIGN ]] || { echo "FAIL: no $SIGN (build with NIXPROV_TESTS=ON)" >&2; exit 1; }

# Nothing here may go anywhere but 127.0.0.1, whatever the environment says.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy='*' NO_PROXY='*'

tmp=$(mktemp -d)
server_pid=
cleanup() {
        local rc=$?
        if [[ -n $server_pid ]]; then
                kill "$server_pid" 2>/dev/null || true
                wait "$server_pid" 2>/dev/null || true
        fi
        if [[ $rc -ne 0 && -f $tmp/server.err ]]; then
                echo "--- server stderr ---" >&2
                cat "$tmp/server.err" >&2
        fi
        rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
        echo "FAIL: $*" >&2
        [[ -f $tmp/body ]] && { echo "--- last body ---" >&2; head -c 2000 "$tmp/body" >&2; echo >&2; }
        exit 1
}
pass() {
        echo "ok - $*"
}

M1=0123456789abcdef0123456789abcdef # has its own profile
M2=fedcba9876543210fedcba9876543210 # group or default
M3=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa # own profile without a signature
MISSING=bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb

mkdir -p "$tmp/data/machines" "$tmp/data/groups" "$tmp/db"
echo "profile: machine-m1" >"$tmp/data/machines/$M1.yaml"
echo "sig: machine-m1" >"$tmp/data/machines/$M1.yaml.minisig"
echo "profile: machine-m3" >"$tmp/data/machines/$M3.yaml"
echo "profile: group-web" >"$tmp/data/groups/web.yaml"
echo "sig: group-web" >"$tmp/data/groups/web.yaml.minisig"
echo "profile: default" >"$tmp/data/default.yaml"
echo "sig: default" >"$tmp/data/default.yaml.minisig"
# Outside the data directory: must never be served.
echo "SECRET-OUTSIDE" >"$tmp/secret.yaml"
echo "SECRET-OUTSIDE" >"$tmp/secret.yaml.minisig"
echo "SECRET-OUTSIDE" >"$tmp/data/secret.yaml"

start_server() {
        rm -f "$tmp/port"
        "$NIXPROV" serve --listen 127.0.0.1:0 --data "$tmp/data" --db "$tmp/db/nixprov.db" \
                --port-file "$tmp/port" "$@" >"$tmp/server.out" 2>>"$tmp/server.err" &
        server_pid=$!
        for _ in $(seq 100); do
                [[ -s $tmp/port ]] && break
                kill -0 "$server_pid" 2>/dev/null || fail "server exited during startup"
                sleep 0.1
        done
        [[ -s $tmp/port ]] || fail "server did not write its port file in 10 s"
        port=$(cat "$tmp/port")
        base="http://127.0.0.1:$port"
}

# Stops the server with SIGTERM; sets stop_rc to its exit status.
stop_server() {
        kill -TERM "$server_pid"
        for _ in $(seq 100); do
                kill -0 "$server_pid" 2>/dev/null || break
                sleep 0.1
        done
        kill -0 "$server_pid" 2>/dev/null && fail "server still running 10 s after SIGTERM"
        stop_rc=0
        wait "$server_pid" || stop_rc=$?
        server_pid=
}

# req METHOD PATH [curl options...]: sets status; the body is in $tmp/body, headers in
# $tmp/headers.
req() {
        local method=$1 path=$2
        shift 2
        local -a method_opt=(-X "$method")
        [[ $method == HEAD ]] && method_opt=(-I)
        status=$(curl -sS --noproxy '*' --path-as-is --max-time 20 -o "$tmp/body" \
                -D "$tmp/headers" -w '%{http_code}' "${method_opt[@]}" "$@" "$base$path")
}

expect_status() {
        [[ $status == "$1" ]] || fail "$2: expected HTTP $1, got $status"
}

# json_check EXPR: EXPR, a Python expression over d (the JSON body), must be true.
json_check() {
        python3 -c '
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
sys.exit(0 if eval("(" + sys.argv[2] + ")") else 1)' "$tmp/body" "$1" || fail "$2: $1 is false"
}

header() {
        tr -d '\r' <"$tmp/headers" | awk -v name="$(tr 'A-Z' 'a-z' <<<"$1")" \
                'BEGIN { FS = ": " } tolower($1) == name { print substr($0, length($1) + 3) }'
}

# expect_error CODE DESC: the answer is CODE with a JSON {"error": "..."}.
expect_error() {
        expect_status "$1" "$2"
        [[ $(header Content-Type) == application/json* ]] || fail "$2: not JSON"
        json_check 'isinstance(d.get("error"), str) and d["error"] != ""' "$2"
        ! grep -q SECRET-OUTSIDE "$tmp/body" || fail "$2: served a file outside the data directory"
        pass "$2 -> $1 $(head -c 120 "$tmp/body")"
}

# Each machine's device keys live in its own state directory.
mkdir -p "$tmp/dev/m1" "$tmp/dev/m2" "$tmp/dev/m3" "$tmp/dev/m3-new" "$tmp/dev/clone" "$tmp/dev/p1" \
        "$tmp/dev/p2" "$tmp/dev/p3" "$tmp/dev/p4"
declare -A DEV=([$M1]=m1 [$M2]=m2 [$M3]=m3)

# sign DEV CONTEXT JSON: prints JSON signed by the keys in $tmp/dev/DEV.
sign() {
        printf '%s' "$3" | "$SIGN" "$tmp/dev/$1" "$2"
}

# enrollment MACHINE DEV [HOSTNAME] [MAC] [EXTRA_JSON_MEMBERS]: the unsigned enrollment JSON.
enrollment() {
        local keys
        read -r -a keys < <("$SIGN" "$tmp/dev/$2" --keys)
        printf '{"machine_id":"%s","hostname":"%s","macs":["%s"],"system":"x86_64-linux","cpus":2,"memory":4294967296,"sign_key":"%s","box_key":"%s","time":1800000000%s}' \
                "$1" "${3:-host-$2}" "${4:-02:00:00:00:00:01}" "${keys[0]}" "${keys[1]}" "${5:+,$5}"
}

# enroll MACHINE DEV [HOSTNAME] [MAC] [EXTRA]: POST /v1/enroll, signed by DEV.
enroll() {
        req POST /v1/enroll -H 'Content-Type: application/json' \
                --data-binary "$(sign "$2" nixprov-enroll-v1 "$(enrollment "$@")")"
}

# post_report JSON [DEV]: the report signed by DEV (default: its machine's device).
post_report() {
        local machine dev
        machine=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["machine_id"])' "$1" 2>/dev/null || true)
        dev=${2:-${DEV[$machine]:-m1}}
        req POST /v1/reports -H 'Content-Type: application/json' \
                --data-binary "$(sign "$dev" nixprov-report-v1 "$1")"
}

post_unsigned() {
        req POST /v1/reports -H 'Content-Type: application/json' --data-binary "$1"
}

fleet_db() {
        "$NIXPROV" fleet "$@" --db "$tmp/db/nixprov.db"
}

report() { # report MACHINE SEQ PHASE STATUS [EXTRA_JSON_MEMBERS]
        printf '{"machine_id":"%s","seq":%s,"phase":"%s","status":"%s","time":1800000000%s}' \
                "$1" "$2" "$3" "$4" "${5:+,$5}"
}

# --- the command line --------------------------------------------------------------------------

"$NIXPROV" serve --help >"$tmp/help"
for opt in --listen --data --db --port-file --max-body --enroll-policy 127.0.0.1:8470 262144; do
        grep -q -- "$opt" "$tmp/help" || fail "serve --help does not mention $opt"
done
pass "serve --help lists every option and default"
"$NIXPROV" fleet --help >"$tmp/help"
for opt in --server --json MACHINE_ID http://127.0.0.1:8470 approve revoke reset --db; do
        grep -q -- "$opt" "$tmp/help" || fail "fleet --help does not mention $opt"
done
pass "fleet --help lists every option and default"
rc=0
"$NIXPROV" serve --listen 127.0.0.1:0 2>/dev/null || rc=$?
[[ $rc == 2 ]] || fail "serve without --data: expected exit 2, got $rc"
rc=0
"$NIXPROV" serve --data "$tmp/data" --listen localhost 2>/dev/null || rc=$?
[[ $rc == 2 ]] || fail "serve --listen localhost: expected exit 2, got $rc"
rc=0
"$NIXPROV" serve --data "$tmp/data" --max-body 0 2>/dev/null || rc=$?
[[ $rc == 2 ]] || fail "serve --max-body 0: expected exit 2, got $rc"
pass "serve refuses a bad command line with exit 2"

start_server
grep -qx "listening on http://127.0.0.1:$port" "$tmp/server.out" ||
        fail "serve did not print 'listening on http://127.0.0.1:$port'"
pass "serve listens on the kernel's port $port and says so"

# --- health and routing ------------------------------------------------------------------------

req GET /healthz
expect_status 200 "GET /healthz"
json_check 'd == {"ok": True}' "GET /healthz"
pass "GET /healthz -> 200 {\"ok\": true}"
req HEAD /healthz
expect_status 200 "HEAD /healthz"
pass "HEAD /healthz -> 200"

req GET /nope
expect_error 404 "GET /nope"
req GET /v1/machines/$M1/nope
expect_error 404 "GET /v1/machines/ID/nope"
req GET /v1/reports
expect_error 405 "GET /v1/reports"
[[ $(header Allow) == POST ]] || fail "405 without 'Allow: POST'"
req POST /healthz --data-binary x
expect_error 405 "POST /healthz"
req DELETE /v1/machines
expect_error 405 "DELETE /v1/machines"
req PUT /v1/machines/$M1/profile --data-binary x
expect_error 405 "PUT /v1/machines/ID/profile"

# --- enrollment --------------------------------------------------------------------------------

req POST /v1/enroll --data-binary "$(enrollment $M1 m1)"
expect_error 401 "an unsigned enrollment"
[[ $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"])' "$tmp/body") == \
        "enrollment must be signed by the device key" ]] || fail "unsigned enrollment message"
req POST /v1/enroll --data-binary "$(sign clone nixprov-enroll-v1 "$(enrollment $M1 m1)")"
expect_error 401 "an enrollment signed by another key than its sign_key"
json_check 'd["error"] == "signature does not verify with the enclosed sign_key"' "wrong key message"
req POST /v1/enroll --data-binary "$(sign m1 nixprov-report-v1 "$(enrollment $M1 m1)")"
expect_error 401 "an enrollment signed for reports"
enroll $M1 m1 "" 52:54:00:12:34:5G
expect_error 400 "an enrollment with a bad MAC"
json_check '"macs" in d["error"]' "the bad MAC is named"
enroll 0123 m1
expect_error 400 "an enrollment with a short machine_id"
json_check '"machine_id" in d["error"]' "the bad machine_id is named"

req GET "/v1/machines/$MISSING/profile"
expect_error 403 "the profile of a machine that never enrolled"
json_check 'd["error"] == "machine '$MISSING' is not enrolled: it must POST /v1/enroll first"' \
        "not enrolled message"

enroll $M1 m1 edge-m1
expect_status 200 "enrollment of M1"
json_check 'd == {"machine_id": "'$M1'", "state": "pending"}' "M1 is pending"
pass "POST /v1/enroll -> 200 pending"
enroll $M1 m1 edge-m1
json_check 'd["state"] == "pending"' "M1 enrolled again"
pass "the same enrollment again -> 200 pending"
req GET "/v1/machines/$M1/profile"
expect_error 403 "the profile of a pending machine"
json_check 'd["error"] == "machine '$M1' is waiting for an operator'"'"'s approval ('"'"'nixprov fleet approve '$M1''"'"')"' \
        "pending message"

fleet_db approve $M1 >"$tmp/fleet.out" || fail "fleet approve M1"
grep -q "Approved machine $M1 (was pending)" "$tmp/fleet.out" || fail "fleet approve says: $(cat "$tmp/fleet.out")"
pass "nixprov fleet approve ID --db -> $(cat "$tmp/fleet.out")"
enroll $M2 m2 web-m2
json_check 'd["state"] == "pending"' "M2 pending"
enroll $M3 m3 edge-m3
fleet_db approve $M2 $M3 >/dev/null || fail "fleet approve M2 M3"
enroll $M3 m3 edge-m3
json_check 'd["state"] == "approved"' "M3 approved"
pass "nixprov fleet approve with two machines; the agent reads 'approved'"

enroll $M1 clone edge-m1
expect_error 409 "M1's id enrolled by another device key"
json_check 'd["error"] == "machine '$M1' is enrolled with another device key (a cloned or reinstalled disk?): an operator can allow the new key with '"'"'nixprov fleet reset '$M1''"'"'"' \
        "conflict message"
req GET /v1/machines/$M1
json_check 'd["state"] == "approved" and isinstance(d["conflict_at"], int) and
            d["hostname"] == "edge-m1" and d["facts"]["cpus"] == 2 and
            d["decided_by"] == "operator" and isinstance(d["enrolled_at"], int) and
            len(d["sign_key"]) == 44 and len(d["box_key"]) == 44' "M1 after the conflict"
pass "a key conflict leaves M1 as it was and is noted (conflict_at)"

# --- profiles ----------------------------------------------------------------------------------

check_profile() { # check_profile PATH SOURCE CONTENT DESC
        req GET "$1"
        expect_status 200 "$4"
        [[ $(cat "$tmp/body") == "$3" ]] || fail "$4: got '$(cat "$tmp/body")', wanted '$3'"
        [[ $(header X-Nixprov-Source) == "$2" ]] ||
                fail "$4: X-Nixprov-Source is '$(header X-Nixprov-Source)', wanted '$2'"
        pass "$4 -> 200 ($2)"
}

check_profile "/v1/machines/$M1/profile" machine "profile: machine-m1" "machine's own profile"
[[ $(header Content-Type) == application/yaml ]] || fail "profile Content-Type is not application/yaml"
check_profile "/v1/machines/$M1/profile.minisig" machine "sig: machine-m1" "machine's own signature"
[[ $(header Content-Type) == text/plain* ]] || fail "signature Content-Type is not text/plain"
check_profile "/v1/machines/$M1/profile?groups=web" machine "profile: machine-m1" \
        "machine's own profile wins over its groups"
check_profile "/v1/machines/$M2/profile?groups=nosuch,web" group "profile: group-web" \
        "first group that has a profile"
check_profile "/v1/machines/$M2/profile.minisig?groups=nosuch,web" group "sig: group-web" \
        "the group profile's signature"
check_profile "/v1/machines/$M2/profile" default "profile: default" "default profile"
check_profile "/v1/machines/$M2/profile.minisig?groups=nosuch" default "sig: default" \
        "the default profile's signature"
req GET "/v1/machines/$M3/profile.minisig"
expect_error 404 "signature of a machine profile that has none (no fallback to the default's)"

mv "$tmp/data/default.yaml" "$tmp/data/default.yaml.off"
req GET "/v1/machines/$M2/profile"
expect_error 404 "an approved machine, no group, no default"
req GET "/v1/machines/$M2/profile.minisig?groups=nosuch"
expect_error 404 "signature for an approved machine, no default"
mv "$tmp/data/default.yaml.off" "$tmp/data/default.yaml"

# --- path traversal and bad names --------------------------------------------------------------

for path in \
        "/v1/machines/..%2f..%2fsecret/profile" \
        "/v1/machines/..%2F..%2Fsecret.yaml%00/profile" \
        "/v1/machines/../../secret/profile" \
        "/v1/machines/%2e%2e/profile" \
        "/v1/machines/0123456789ABCDEF0123456789ABCDEF/profile" \
        "/v1/machines/0123456789abcdef0123456789abcde/profile" \
        "/v1/machines/0123456789abcdef0123456789abcdef0/profile" \
        "/v1/machines/0123456789abcdef0123456789abcdeg/profile.minisig" \
        "/v1/machines/0123456789abcdef0123456789abcde%00/profile" \
        "/v1/machines/$M2/profile?groups=..%2f..%2fsecret" \
        "/v1/machines/$M2/profile?groups=../secret" \
        "/v1/machines/$M2/profile.minisig?groups=..%2fsecret" \
        "/v1/machines/$M2/profile?groups=%2e%2e" \
        "/v1/machines/$M2/profile?groups=.hidden" \
        "/v1/machines/$M2/profile?groups=web/../../secret" \
        "/v1/machines/$M2/profile?groups=Web" \
        "/v1/machines/$M2/profile?groups=web,,web" \
        "/v1/machines/$M2/profile?groups=web%00x" \
        "/v1/machines/$M2/profile?groups=$(printf 'a%.0s' $(seq 65))" \
        "/v1/machines/$M2/profile?groups=$(printf 'g,%.0s' $(seq 32))g" \
        "/v1/machines/../secret.yaml" \
        "/v1/machines/..%2fsecret.yaml"; do
        req GET "$path"
        [[ $status == 400 || $status == 404 ]] || fail "$path: expected 400 or 404, got $status"
        expect_error "$status" "traversal/bad name $path"
done

# --- reports -----------------------------------------------------------------------------------

R1=$(report $M1 1 fetch started '"serial":7,"message":"fetching"')
post_report "$R1"
expect_status 200 "first report"
json_check 'd == {"stored": True, "duplicate": False}' "first report"
pass "POST /v1/reports -> 200 stored, not a duplicate"
post_report "$R1"
expect_status 200 "the same report again"
json_check 'd == {"stored": True, "duplicate": True}' "the same report again"
pass "the same report again -> 200 duplicate: true"

R2=$(report $M1 2 rebuild failed '"serial":7,"error":"nixos-rebuild exited with 1","counts":{"substituted":120,"built":3,"built_remote":2,"downloaded_bytes":104857600},"timings":{"fetch":0.5,"rebuild":312},"log_tail":["error: builder failed","line 2"]')
post_report "$R2"
expect_status 200 "second report"
json_check 'd["duplicate"] is False' "second report"
pass "a full report (counts, timings, log_tail) -> 200"
post_report "$(report $M2 5 identify ok)"
expect_status 200 "report of another machine"
pass "a report of another enrolled machine -> 200"

req GET /v1/machines
expect_status 200 "GET /v1/machines"
json_check 'len(d["machines"]) == 3 and d["next"] is None' "GET /v1/machines lists 3 machines"
json_check 'any(m["machine_id"] == "'$M1'" and m["state"] == "approved" and
               m["phase"] == "rebuild" and m["status"] == "failed" and m["serial"] == 7 and
               m["reports"] == 2 and isinstance(m["last_seen"], int) for m in d["machines"])' \
        "GET /v1/machines shows M1's latest report"
json_check 'any(m["machine_id"] == "'$M2'" and m["serial"] is None and m["reports"] == 1
               for m in d["machines"])' "GET /v1/machines shows M2"
pass "GET /v1/machines -> the machines with their latest report and report counts"

req GET /v1/machines/$M1
expect_status 200 "GET /v1/machines/M1"
json_check 'd["machine_id"] == "'$M1'" and d["state"] == "approved" and
            [r["seq"] for r in d["reports"]] == [1, 2]' "M1's history in seq order, stored once"
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["reports"][0] == json.loads(sys.argv[2]), "report 1 differs"
assert d["reports"][1] == json.loads(sys.argv[3]), "report 2 differs"' "$tmp/body" \
        "$(sign m1 nixprov-report-v1 "$R1")" "$(sign m1 nixprov-report-v1 "$R2")" ||
        fail "reports not stored verbatim (with their signatures)"
pass "GET /v1/machines/ID -> its reports, verbatim, in seq order"
req GET /v1/machines/$MISSING
expect_error 404 "GET /v1/machines/UNKNOWN"
req GET /v1/machines/0123456789ABCDEF0123456789ABCDEF
expect_error 400 "GET /v1/machines/BAD-ID"

# Bad reports: nothing stored. What is not a JSON object cannot carry a signature: 401.
unsigned_report() { # unsigned_report DESC BODY
        post_unsigned "$2"
        expect_error 401 "report with $1"
}
unsigned_report "malformed JSON" '{"machine_id":'
unsigned_report "an empty body" ''
unsigned_report "trailing garbage" "$(report $M1 3 fetch ok) x"
unsigned_report "an array" '[1, 2]'
unsigned_report "a string" '"report"'
unsigned_report "no signature" "$(report $M1 3 fetch ok)"
json_check 'd["error"] == "reports must be signed by the device key"' "unsigned report message"
post_unsigned "${R1%\}},\"signature\":\"AAAA\"}"
expect_error 400 "report with a malformed signature member"
# The rest is signed by M1's key: the report's own checks answer.
bad_report() { # bad_report DESC BODY
        post_report "$2" m1
        expect_error 400 "report with $1"
}
bad_report "no machine_id" '{"seq":3,"phase":"fetch","status":"ok","time":1}'
bad_report "no seq" '{"machine_id":"'$M1'","phase":"fetch","status":"ok","time":1}'
bad_report "no phase" '{"machine_id":"'$M1'","seq":3,"status":"ok","time":1}'
bad_report "no status" '{"machine_id":"'$M1'","seq":3,"phase":"fetch","time":1}'
bad_report "no time" '{"machine_id":"'$M1'","seq":3,"phase":"fetch","status":"ok"}'
bad_report "an uppercase machine_id" "$(report 0123456789ABCDEF0123456789ABCDEF 3 fetch ok)"
bad_report "a short machine_id" "$(report 0123 3 fetch ok)"
bad_report "a traversal machine_id" "$(report ../../../../etc/passwd 3 fetch ok)"
bad_report "a numeric machine_id" '{"machine_id":1,"seq":3,"phase":"fetch","status":"ok","time":1}'
bad_report "a string seq" "$(report $M1 '"3"' fetch ok)"
bad_report "a negative seq" "$(report $M1 -1 fetch ok)"
bad_report "a fractional seq" "$(report $M1 3.5 fetch ok)"
bad_report "a huge seq" "$(report $M1 99999999999999999999 fetch ok)"
bad_report "a null seq" "$(report $M1 null fetch ok)"
bad_report "an unknown status" "$(report $M1 3 fetch maybe)"
bad_report "a bad phase" "$(report $M1 3 'Fe tch' ok)"
bad_report "a string time" '{"machine_id":"'$M1'","seq":3,"phase":"fetch","status":"ok","time":"now"}'
bad_report "a string serial" "$(report $M1 3 fetch ok '"serial":"7"')"
bad_report "a negative serial" "$(report $M1 3 fetch ok '"serial":-1')"
bad_report "a numeric message" "$(report $M1 3 fetch ok '"message":5')"
bad_report "an object error" "$(report $M1 3 fetch ok '"error":{}')"
bad_report "counts not an object" "$(report $M1 3 fetch ok '"counts":[1]')"
bad_report "a negative count" "$(report $M1 3 fetch ok '"counts":{"built":-1}')"
bad_report "a string count" "$(report $M1 3 fetch ok '"counts":{"substituted":"5"}')"
bad_report "a string timing" "$(report $M1 3 fetch ok '"timings":{"fetch":"1s"}')"
bad_report "log_tail of numbers" "$(report $M1 3 fetch ok '"log_tail":[1,2]')"
bad_report "duplicate keys" "$(report $M1 3 fetch ok '"seq":4')"
bad_report "a NUL escape" "$(report $M1 3 fetch ok '"message":"a\u0000b"')"
printf '{"machine_id":"%s","seq":3,"phase":"fetch","status":"ok","time":1,"message":"\xff\xfe"}' \
        $M1 | "$SIGN" "$tmp/dev/m1" nixprov-report-v1 >"$tmp/bad-utf8"
req POST /v1/reports --data-binary "@$tmp/bad-utf8"
expect_error 400 "report with invalid UTF-8"
{ printf '{"a":'; printf '%.0s[' $(seq 5000); printf '%.0s]' $(seq 5000); printf '}'; } |
        "$SIGN" "$tmp/dev/m1" nixprov-report-v1 >"$tmp/deep"
req POST /v1/reports --data-binary "@$tmp/deep"
expect_error 400 "report nested 5000 deep"

# Over the cap (256 KiB by default): declared length, and chunked with no length.
python3 -c '
import json, sys
print(json.dumps({"machine_id": sys.argv[1], "seq": 3, "phase": "fetch", "status": "ok",
                  "time": 1, "message": "x" * 300000}))' $M1 >"$tmp/big"
req POST /v1/reports --data-binary "@$tmp/big"
expect_error 413 "a 300 kB report (Content-Length)"
req POST /v1/reports -H 'Transfer-Encoding: chunked' --data-binary "@$tmp/big"
expect_error 413 "a 300 kB report (chunked)"
head -c 3000000 /dev/zero >"$tmp/huge"
req POST /v1/reports -H 'Transfer-Encoding: chunked' -H 'Expect:' --data-binary "@$tmp/huge" 2>/dev/null || true
[[ $status == 413 || $status == 000 ]] || fail "3 MB chunked: expected 413 or a closed connection, got $status"
pass "a 3 MB chunked body -> $status (not read to the end)"
python3 -c '
import json, sys
print(json.dumps({"machine_id": sys.argv[1], "seq": 3, "phase": "fetch", "status": "progress",
                  "time": 1, "message": "x" * 200000}, separators=(",", ":")))' $M1 |
        "$SIGN" "$tmp/dev/m1" nixprov-report-v1 >"$tmp/large"
req POST /v1/reports --data-binary "@$tmp/large"
expect_status 200 "a 200 kB report (under the cap)"
pass "a 200 kB report (under the cap) -> 200"

req GET /v1/machines/$M1
expect_status 200 "M1 after the bad reports"
json_check '[r["seq"] for r in d["reports"]] == [1, 2, 3] and d["status"] == "progress"' \
        "no bad report was stored"
pass "none of the refused reports was stored"

# Concurrent reports: none lost, none duplicated.
pids=()
for seq in $(seq 10 29); do
        sign m1 nixprov-report-v1 "$(report $M1 "$seq" rebuild progress)" >"$tmp/concurrent-$seq"
done
for seq in $(seq 10 29); do
        curl -sS --noproxy '*' --max-time 20 -o /dev/null -X POST -f \
                --data-binary "@$tmp/concurrent-$seq" "$base/v1/reports" &
        pids+=($!)
        curl -sS --noproxy '*' --max-time 20 -o /dev/null -X POST -f \
                --data-binary "@$tmp/concurrent-$seq" "$base/v1/reports" &
        pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || fail "a concurrent report failed"; done
req GET /v1/machines/$M1
# In the order they were stored: 1, 2, 3, then the concurrent ones in whatever order won.
json_check '[r["seq"] for r in d["reports"]][:3] == [1, 2, 3] and
            sorted(r["seq"] for r in d["reports"]) == [1, 2, 3] + list(range(10, 30))' \
        "40 concurrent posts of 20 reports"
pass "40 concurrent posts of 20 reports -> each stored once"

req GET /metrics
expect_status 200 "GET /metrics"
grep -qx 'nixprov_reports_total 24' "$tmp/body" || fail "/metrics: nixprov_reports_total is not 24"
grep -qx 'nixprov_machines{status="progress"} 1' "$tmp/body" || fail "/metrics: by status"
grep -qx 'nixprov_machines{status="ok"} 1' "$tmp/body" || fail "/metrics: by status"
grep -qx 'nixprov_machines_enrollment{state="approved"} 3' "$tmp/body" || fail "/metrics: by state"
pass "GET /metrics -> Prometheus text with machines by status and state, and reports total"

req GET /healthz
expect_status 200 "GET /healthz after all that"
pass "the server still answers after all that"

# --- nixprov fleet -----------------------------------------------------------------------------

"$NIXPROV" fleet --server "$base" >"$tmp/fleet" || fail "nixprov fleet failed"
grep -q '^MACHINE  *STATE  *HOSTNAME  *SERIAL  *PHASE  *STATUS  *REPORTS  *LAST SEEN$' "$tmp/fleet" ||
        fail "nixprov fleet: no table header"
grep -Eq "^$M1  +approved! +edge-m1 +7 +rebuild +progress +23 +[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$" \
        "$tmp/fleet" || fail "nixprov fleet: no row for M1: $(cat "$tmp/fleet")"
grep -Eq "^$M2  +approved +web-m2 +- +identify +ok +1 " "$tmp/fleet" || fail "nixprov fleet: no row for M2"
grep -Eq "^$M3  +approved +edge-m3 +- +- +- +0 " "$tmp/fleet" || fail "nixprov fleet: no row for M3"
grep -q "^! another device key tried to enroll" "$tmp/fleet" || fail "nixprov fleet: no note of the conflict"
pass "nixprov fleet -> a table with the machines, their state, hostname and the key conflict"
"$NIXPROV" fleet --server "$base/" --json >"$tmp/body" || fail "nixprov fleet --json failed"
json_check 'sorted(m["machine_id"] for m in d) == sorted(["'$M1'", "'$M2'", "'$M3'"]) and
            all(m["state"] == "approved" for m in d)' "nixprov fleet --json"
pass "nixprov fleet --json -> the server's JSON"
"$NIXPROV" fleet --server "$base" $M1 >"$tmp/fleet" || fail "nixprov fleet ID failed"
[[ $(grep -Ec '^[0-9]+ +[0-9]{4}-[0-9-]+T[0-9:]+Z +[a-z]+ +[a-z]+' "$tmp/fleet") == 23 ]] ||
        fail "nixprov fleet ID: not 23 report lines: $(cat "$tmp/fleet")"
grep -q '^2 .* rebuild  *failed  *nixos-rebuild exited with 1$' "$tmp/fleet" ||
        fail "nixprov fleet ID: report 2 with its error"
pass "nixprov fleet ID -> one line per report"
rc=0
"$NIXPROV" fleet --server "$base" $MISSING 2>"$tmp/fleet.err" || rc=$?
[[ $rc == 1 ]] && grep -q 404 "$tmp/fleet.err" || fail "fleet UNKNOWN: expected exit 1 and 404"
pass "nixprov fleet UNKNOWN -> exit 1: $(head -1 "$tmp/fleet.err")"
rc=0
"$NIXPROV" fleet --server "$base" NOT-AN-ID 2>/dev/null || rc=$?
[[ $rc == 2 ]] || fail "fleet with a bad machine id: expected exit 2, got $rc"
rc=0
"$NIXPROV" fleet --server "ftp://127.0.0.1:$port" 2>/dev/null || rc=$?
[[ $rc == 2 ]] || fail "fleet with an ftp:// server: expected exit 2, got $rc"
pass "nixprov fleet refuses a bad machine id or URL with exit 2"

# --- trust: refusals, revoke, reset, seal ------------------------------------------------------

post_report "$(report $M1 2 rebuild ok)" m1
expect_error 409 "report 2 again with other content"
json_check 'd["error"] == "report 2 of machine '$M1' was already stored with other content"' \
        "replay message"
post_report "$(report $M1 40 rebuild ok)" clone
expect_error 401 "a report of M1 signed by another key"
json_check 'd["error"] == "report signature does not verify with the key machine '$M1' enrolled"' \
        "wrong key message"
post_report "$(report $MISSING 1 fetch ok)" m1
expect_error 403 "a report of a machine that never enrolled"
json_check 'd["error"] == "machine '$MISSING' is not enrolled"' "not enrolled message"

fleet_db revoke $M2 >"$tmp/fleet.out" || fail "fleet revoke M2"
grep -q "Revoked machine $M2 (was approved)" "$tmp/fleet.out" || fail "fleet revoke says: $(cat "$tmp/fleet.out")"
post_report "$(report $M2 6 fetch ok)"
expect_error 403 "a report of a revoked machine"
json_check 'd["error"] == "machine '$M2' is revoked"' "revoked message"
req GET "/v1/machines/$M2/profile?groups=web"
expect_error 403 "the profile of a revoked machine"
enroll $M2 m2 web-m2
expect_status 200 "a revoked machine enrolls again"
json_check 'd["state"] == "revoked"' "a revoked machine is told so"
pass "nixprov fleet revoke -> reports and profile refused, enrollment answers 'revoked'"

post_report "$(report $M3 1 fetch started)"
expect_status 200 "M3's first report"
fleet_db reset $M3 >"$tmp/fleet.out" || fail "fleet reset M3"
grep -q "Reset machine $M3 (was approved)" "$tmp/fleet.out" || fail "fleet reset says: $(cat "$tmp/fleet.out")"
post_report "$(report $M3 2 fetch ok)"
expect_error 403 "a report of a reset machine"
enroll $M3 m3-new edge-m3
json_check 'd["state"] == "pending"' "M3 re-enrolled with a new key"
post_report "$(report $M3 1 identify ok)" m3-new
expect_status 200 "M3's seq 1 from the new key"
json_check 'd == {"stored": True, "duplicate": False}' "seq 1 again after a reset is new"
req GET /v1/machines/$M3
json_check '[r["phase"] for r in d["reports"]] == ["fetch", "identify"] and d["phase"] == "identify"' \
        "both reports kept, the latest last"
pass "nixprov fleet reset -> the new key enrolls, seq 1 is stored again, old reports kept"

rc=0
fleet_db approve $MISSING 2>"$tmp/fleet.err" || rc=$?
[[ $rc == 1 ]] || fail "fleet approve UNKNOWN: expected exit 1, got $rc"
grep -q "Machine $MISSING has not enrolled; list it under approve.machine-ids" "$tmp/fleet.err" ||
        fail "fleet approve UNKNOWN says: $(cat "$tmp/fleet.err")"
rc=0
"$NIXPROV" fleet approve $M1 2>/dev/null || rc=$?
[[ $rc == 2 ]] || fail "fleet approve without --db: expected exit 2, got $rc"
rc=0
fleet_db approve NOT-AN-ID 2>/dev/null || rc=$?
[[ $rc == 2 ]] || fail "fleet approve NOT-AN-ID: expected exit 2, got $rc"
rc=0
"$NIXPROV" fleet approve $M1 --db "$tmp/no-such.db" 2>/dev/null || rc=$?
[[ $rc == 1 && ! -e $tmp/no-such.db ]] || fail "fleet approve with a missing database: exit $rc"
pass "nixprov fleet approve refuses an unknown machine (1), a bad command line (2), a missing db (1)"

echo "builder token" >"$tmp/secret"
"$NIXPROV" seal --machine $M1 --db "$tmp/db/nixprov.db" --file "$tmp/secret" >"$tmp/sealed" ||
        fail "seal --machine of an approved machine"
grep -Eq '^\{sealed: [A-Za-z0-9+/=]{60,}\}$' "$tmp/sealed" || fail "seal --machine printed $(cat "$tmp/sealed")"
pass "nixprov seal --machine ID --db -> {sealed: ...} to its enrolled box key"
rc=0
"$NIXPROV" seal --machine $M3 --db "$tmp/db/nixprov.db" --file "$tmp/secret" 2>"$tmp/seal.err" || rc=$?
[[ $rc == 4 ]] && grep -q "Machine $M3 is pending: approve it first" "$tmp/seal.err" ||
        fail "seal --machine of a pending machine: exit $rc, $(cat "$tmp/seal.err")"
rc=0
"$NIXPROV" seal --machine $M2 --db "$tmp/db/nixprov.db" --file "$tmp/secret" 2>/dev/null || rc=$?
[[ $rc == 4 ]] || fail "seal --machine of a revoked machine: exit $rc"
rc=0
"$NIXPROV" seal --machine $MISSING --db "$tmp/db/nixprov.db" --file "$tmp/secret" 2>/dev/null || rc=$?
[[ $rc == 4 ]] || fail "seal --machine of an unknown machine: exit $rc"
pass "nixprov seal --machine refuses a pending, revoked or unknown machine (exit 4)"

# --- shutdown and durability -------------------------------------------------------------------

stop_server
[[ $stop_rc == 0 ]] || fail "serve exited $stop_rc after SIGTERM"
[[ ! -e $tmp/port ]] || fail "serve left its port file behind"
pass "SIGTERM -> serve exits 0 promptly"

start_server
req GET /v1/machines/$M1
expect_status 200 "M1 after a restart"
json_check 'sorted(r["seq"] for r in d["reports"]) == [1, 2, 3] + list(range(10, 30))' \
        "reports after a restart"
pass "after a restart on the same database, every report is there"
post_report "$R2"
json_check 'd == {"stored": True, "duplicate": True}' "a repeated report after a restart"
pass "a report repeated after a restart -> duplicate: true"
stop_server
[[ $stop_rc == 0 ]] || fail "serve exited $stop_rc after the second SIGTERM"

rc=0
"$NIXPROV" fleet --server "$base" 2>"$tmp/fleet.err" || rc=$?
[[ $rc == 1 ]] || fail "fleet against a stopped server: expected exit 1, got $rc"
grep -q "$base/v1/machines" "$tmp/fleet.err" || fail "fleet error does not name the URL"
grep -qi "connect" "$tmp/fleet.err" || fail "fleet error does not give curl's reason"
pass "nixprov fleet against a stopped server -> exit 1: $(head -1 "$tmp/fleet.err")"

# --- the enrollment policy ---------------------------------------------------------------------

P1=11111111111111111111111111111111 # listed by id (as a dashed UUID)
P2=22222222222222222222222222222222 # by MAC
P3=33333333333333333333333333333333 # by token
P4=44444444444444444444444444444444 # a wrong token
TOKEN="enroll-token-$RANDOM$RANDOM$RANDOM"
printf '%s\n' "$TOKEN" >"$tmp/token"
chmod 0600 "$tmp/token"
cat >"$tmp/policy.yaml" <<EOF_POLICY
approve:
  machine-ids: [11111111-1111-1111-1111-111111111111]
  macs: ["52:54:00:AA:BB:CC"]
  token-files: [$tmp/token]
EOF_POLICY

start_policy_server() {
        rm -f "$tmp/port"
        "$NIXPROV" serve --listen 127.0.0.1:0 --data "$tmp/data" --db "$tmp/db/policy.db" \
                --port-file "$tmp/port" --enroll-policy "$@" >"$tmp/server.out" 2>>"$tmp/server.err" &
        server_pid=$!
}

printf 'approve:\n  macs: []\n  tokens: [x]\n' >"$tmp/bad-policy.yaml"
rc=0
"$NIXPROV" serve --listen 127.0.0.1:0 --data "$tmp/data" --db "$tmp/db/policy.db" \
        --enroll-policy "$tmp/bad-policy.yaml" 2>"$tmp/policy.err" || rc=$?
[[ $rc == 1 ]] && grep -q "bad-policy.yaml:3:3: approve.tokens: unknown key" "$tmp/policy.err" ||
        fail "serve with a bad policy: exit $rc, $(cat "$tmp/policy.err")"
pass "serve refuses a bad policy naming file:line:column and key: $(head -1 "$tmp/policy.err")"
chmod 0644 "$tmp/token"
rc=0
"$NIXPROV" serve --listen 127.0.0.1:0 --data "$tmp/data" --db "$tmp/db/policy.db" \
        --enroll-policy "$tmp/policy.yaml" 2>"$tmp/policy.err" || rc=$?
[[ $rc == 1 ]] && grep -q "must be mode 0600" "$tmp/policy.err" ||
        fail "serve with a token file of mode 0644: exit $rc, $(cat "$tmp/policy.err")"
! grep -q "$TOKEN" "$tmp/policy.err" || fail "the token is in serve's error"
pass "serve refuses a token file readable by others: $(head -1 "$tmp/policy.err")"
chmod 0600 "$tmp/token"

# token_proof ID DEV: the proof of the token for this machine id and DEV's keys.
token_proof() {
        python3 -c '
import base64, hashlib, sys
token = open(sys.argv[1], "rb").read()
if token.endswith(b"\n"):
    token = token[:-1]
k = hashlib.blake2b(token, digest_size=32).digest()
sign_key, box_key = (base64.b64decode(x) for x in sys.argv[3].split())
proof = hashlib.blake2b(sys.argv[2].encode() + sign_key + box_key, digest_size=32, key=k)
print(base64.b64encode(proof.digest()).decode())' "$tmp/token" "$1" "$("$SIGN" "$tmp/dev/$2" --keys)"
}

start_policy_server "$tmp/policy.yaml"
for _ in $(seq 100); do
        [[ -s $tmp/port ]] && break
        kill -0 "$server_pid" 2>/dev/null || fail "the policy server exited during startup"
        sleep 0.1
done
port=$(cat "$tmp/port")
base="http://127.0.0.1:$port"
enroll $P1 p1
json_check 'd["state"] == "approved"' "P1 listed by machine id"
enroll $P2 p2 "" 52:54:00:aa:bb:cc
json_check 'd["state"] == "approved"' "P2 listed by MAC"
enroll $P3 p3 "" "" '"token_proof":"'"$(token_proof $P3 p3)"'"'
json_check 'd["state"] == "approved"' "P3 with the token's proof"
enroll $P4 p4 "" "" '"token_proof":"'"$(token_proof $P3 p4)"'"'
json_check 'd["state"] == "pending"' "P4 with a proof for another machine"
enroll $M1 m1
json_check 'd["state"] == "pending"' "a machine the policy does not name"
req GET /v1/machines
json_check '{m["machine_id"]: m["decided_by"] for m in d["machines"]} == {"'$P1'": "policy:machine-id",
            "'$P2'": "policy:mac", "'$P3'": "policy:token", "'$P4'": None, "'$M1'": None}' \
        "decided_by of each"
pass "--enroll-policy approves by machine id, MAC and token proof; the rest wait"
req GET "/v1/machines/$P3/profile"
expect_status 200 "the profile of a machine the policy approved"
stop_server
! grep -rq "$TOKEN" "$tmp/server.err" "$tmp/server.out" "$tmp/db" || fail "the token was logged or stored"
pass "the token is in no log and no database"

! grep -Eq 'AddressSanitizer|runtime error|LeakSanitizer' "$tmp/server.err" ||
        fail "the sanitizers complained"
pass "the server ran clean"
echo "All serve checks passed."
