#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# nixprov serve's connections, with raw sockets on 127.0.0.x: ambiguous framing refused.
. "$(dirname "$0")/lib.sh"

SIGN=${NIXPROV_TEST_TOOLS:-$BIN/../tests}/device-sign
CLIENT="python3 $SRC/tests/integration/conn-client.py"
[ -x "$SIGN" ] || { echo "no $SIGN (build with NIXPROV_TESTS=ON)" >&2; exit 77; }

M1=0123456789abcdef0123456789abcdef
mkdir -p data dev
echo "profile: default" >data/default.yaml
echo "sig: default" >data/default.yaml.minisig
approve_machines $M1
DB=$TMP/nixprov.db

# report SEQ: a report of M1, signed by its device key.
report() {
  printf '{"machine_id":"%s","seq":%s,"phase":"fetch","status":"ok","time":1800000000}' $M1 "$1" |
    "$SIGN" "$TMP/dev" nixprov-report-v1
}

# stored SEQ: whether M1's report SEQ is in the database.
stored() {
  python3 -c '
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
n = db.execute("SELECT count(*) FROM reports WHERE machine_id = ? AND seq = ?",
               (sys.argv[2], int(sys.argv[3]))).fetchone()[0]
sys.exit(0 if n == 1 else 1)' "$DB" $M1 "$1"
}

# request FILE BODY HEADERS...: a POST /v1/reports with exactly these headers and body.
request() {
  local file=$1 body=$2 h
  shift 2
  {
    printf 'POST /v1/reports HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n'
    printf 'Content-Type: application/json\r\n'
    for h in "$@"; do printf '%s\r\n' "$h"; done
    printf '\r\n%s' "$body"
  } >"$file"
}

# chunked VAR BODY: sets VAR to BODY in one chunk and the last one.
chunked() {
  printf -v "$1" '%x\r\n%s\r\n0\r\n\r\n' "${#2}" "$2"
}

start_server data "$DB"
keys=$("$SIGN" "$TMP/dev" --keys)
read -r sign_key box_key <<<"$keys"
printf '{"machine_id":"%s","hostname":"h","macs":["02:00:00:00:00:01"],"system":"x86_64-linux","cpus":1,"memory":1,"sign_key":"%s","box_key":"%s","time":%s}' \
  $M1 "$sign_key" "$box_key" "$(date +%s)" | "$SIGN" "$TMP/dev" nixprov-enroll-v1 >enroll.json
code=$(curl -sS -o enroll.out -w '%{http_code}' --data-binary @enroll.json "$SERVER_URL/v1/enroll")
[ "$code" = 200 ] || { cat enroll.out >&2; die "enrollment: $code"; }

# ---- 1. ambiguous framing: 400 with a reason, the route never runs ----------------------------

# refused NAME SEQ REASON BODY HEADERS...: the request gets exactly a 400 with REASON, the
# connection is closed after it, and report SEQ is not stored.
refused() {
  local name=$1 seq=$2 reason=$3
  shift 3
  request "$name.req" "$@"
  run "$name" $CLIENT raw "$SERVER_PORT" "$name.req"
  [ "$rc" = 0 ] || { cat "$name.out" >&2; die "$name: the client failed"; }
  [ "$(head -n 1 "$name.out")" = $'HTTP/1.1 400 Bad Request\r' ] ||
    { cat "$name.out" >&2; die "$name: not 'HTTP/1.1 400 Bad Request'"; }
  expect_grep "$name" "{\"error\":\"ambiguous request framing: $reason\"}"
  [ "$(grep -c '^HTTP/' "$name.out")" = 1 ] || die "$name: more than one answer"
  ! stored "$seq" || die "$name: report $seq was stored"
  ok "$name -> 400 ambiguous request framing: $reason; nothing stored"
}

r=$(report 1)
len=${#r}
chunked cbody "$r"
refused two-lengths 1 "more than one Content-Length header" "$r" \
  "Content-Length: $len" "Content-Length: $len"
refused two-different-lengths 1 "more than one Content-Length header" "$r" \
  "Content-Length: $len" "Content-Length: 5"
# What a front proxy that prefers Content-Length would take as one request, libmicrohttpd
# alone would take as a chunked one and a smuggled second request.
printf -v smuggled '0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'
refused length-and-chunked 1 "both Content-Length and Transfer-Encoding" "$smuggled" \
  "Content-Length: ${#smuggled}" "Transfer-Encoding: chunked"
refused chunked-and-length 1 "both Content-Length and Transfer-Encoding" "$cbody" \
  "Transfer-Encoding: chunked" "Content-Length: $len"
refused two-encodings 1 "more than one Transfer-Encoding header" "$cbody" \
  "Transfer-Encoding: chunked" "Transfer-Encoding: chunked"
refused gzip 1 "a Transfer-Encoding other than chunked" "$r" "Transfer-Encoding: gzip"
refused gzip-chunked 1 "a Transfer-Encoding other than chunked" "$cbody" \
  "Transfer-Encoding: gzip, chunked"
refused chunked-identity 1 "a Transfer-Encoding other than chunked" "$cbody" \
  "Transfer-Encoding: chunked, identity"

# The same report, framed once, is stored: the refusals above were about the framing.
request plain.req "$r" "Content-Length: $len"
run plain $CLIENT raw "$SERVER_PORT" plain.req
[ "$(head -n 1 plain.out)" = $'HTTP/1.1 200 OK\r' ] || { cat plain.out >&2; die "plain: not 200"; }
stored 1 || die "report 1 sent with one Content-Length was not stored"
r=$(report 2)
chunked cbody "$r"
request chunked.req "$cbody" "Transfer-Encoding: chunked"
run chunked $CLIENT raw "$SERVER_PORT" chunked.req
[ "$(head -n 1 chunked.out)" = $'HTTP/1.1 200 OK\r' ] || { cat chunked.out >&2; die "chunked: not 200"; }
stored 2 || die "report 2 sent chunked was not stored"
ok "the same reports with one Content-Length, or chunked alone, are stored (200)"

# ---- 2. deadlines: a byte at a time keeps libmicrohttpd's idle timeout (30 s) at bay, not them ---

stop_server
start_server data "$DB" --head-timeout 2 --body-timeout 2

# A head of 61 bytes at a byte every 0.2 s would take 12 s.
printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >slow-head.req
run slow-head $CLIENT slow "$SERVER_PORT" slow-head.req 0.2
expect_grep slow-head "cut after"
! grep -q '^HTTP/' slow-head.out || die "slow-head: the cut-off request was answered"
grep -q 'Connection from 127.0.0.1 cut off: request head not complete after 2 s.' "$TMP/server.log" ||
  { cat "$TMP/server.log" >&2; die "slow-head: the server did not say why it cut the connection"; }
ok "a head trickling in a byte every 0.2 s is cut off at --head-timeout 2: $(cat slow-head.out)"

# The head at once, then the body (a report of some 200 bytes) at a byte every 0.1 s.
r=$(report 3)
request slow-body.req "$r" "Content-Length: ${#r}"
head_size=$(($(stat -c %s slow-body.req) - ${#r}))
run slow-body $CLIENT slow "$SERVER_PORT" slow-body.req 0.1 "$head_size"
expect_grep slow-body "cut after"
n=$(sed -n 's/^cut after \([0-9]*\) of.*/\1/p' slow-body.out)
[ "$n" -gt "$head_size" ] && [ "$n" -lt "$(stat -c %s slow-body.req)" ] ||
  die "slow-body: cut after $n bytes, not within the body (head: $head_size bytes)"
grep -q 'Connection from 127.0.0.1 cut off: request body not complete after 2 s.' "$TMP/server.log" ||
  die "slow-body: the server did not say why it cut the connection"
! stored 3 || die "slow-body: the cut-off report 3 was stored"
ok "a body trickling in a byte every 0.1 s is cut off at --body-timeout 2, nothing stored: $(cat slow-body.out)"

# A kept-alive connection gets the head deadline again after its answer (libmicrohttpd's idle
# timeout alone would keep it 30 s).
printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' >keepalive.req
run keepalive $CLIENT idle "$SERVER_PORT" keepalive.req 20
[ "$(cat keepalive.out)" = $'HTTP/1.1 200 OK\nclosed' ] ||
  { cat keepalive.out >&2; die "keepalive: not answered, then closed within 20 s"; }
ok "a kept-alive connection idle after its answer is closed at --head-timeout 2"

# The same report at once is stored, on the same server.
run fast-body $CLIENT raw "$SERVER_PORT" slow-body.req
[ "$(head -n 1 fast-body.out)" = $'HTTP/1.1 200 OK\r' ] || { cat fast-body.out >&2; die "fast-body: not 200"; }
stored 3 || die "report 3 sent at once was not stored"
ok "the same report sent at once is stored (200)"

# ---- 3. limits and trusted proxies ---------------------------------------------------------------

stop_server
start_server data "$DB" -v --trusted-proxy 127.0.0.1 --trusted-proxy ::ffff:127.0.0.9

# X-Forwarded-For is believed from a trusted proxy only: its right-most untrusted address.
# (198.51.100.0/24 is documentation space; nothing is sent there, it is only a header.)
get() { # get NAME SOURCE [CURL OPTION...]: GET /healthz from 127.0.0.x SOURCE, must be 200
  local name=$1 source=$2 code
  shift 2
  code=$(curl -sS -o /dev/null -w '%{http_code}' --interface "$source" "$@" "$SERVER_URL/healthz")
  [ "$code" = 200 ] || die "$name: $code"
}
get xff-trusted 127.0.0.1 -H 'X-Forwarded-For: 198.51.100.1, 198.51.100.7, 127.0.0.9'
get xff-untrusted 127.0.0.2 -H 'X-Forwarded-For: 198.51.100.8'
get xff-junk 127.0.0.1 -H 'X-Forwarded-For: 198.51.100.1, not-an-address'
get xff-last-header 127.0.0.1 -H 'X-Forwarded-For: 198.51.100.2' -H 'X-Forwarded-For: 198.51.100.3'
for expect in 'GET /healthz from 198.51.100.7: 200' 'GET /healthz from 127.0.0.2: 200' \
  'GET /healthz from 127.0.0.1: 200' 'GET /healthz from 198.51.100.3: 200'; do
  grep -qF "$expect" "$TMP/server.log" || { cat "$TMP/server.log" >&2; die "no '$expect' in the log"; }
done
! grep -qF '198.51.100.8' "$TMP/server.log" || die "X-Forwarded-For believed from an untrusted peer"
ok "X-Forwarded-For is believed only from --trusted-proxy peers (right-most untrusted address)"
expect_exit bad-proxy 2 "$BIN/nixprov" serve --data data --trusted-proxy localhost
expect_grep bad-proxy "--trusted-proxy must be a numeric IPv4 or IPv6 address, not 'localhost'."
expect_exit bad-limit 2 "$BIN/nixprov" serve --data data --max-connections 0
expect_grep bad-limit "--max-connections must be a number from 1 to 65536, not '0'."
expect_exit bad-timeout 2 "$BIN/nixprov" serve --data data --head-timeout 0
expect_grep bad-timeout "--head-timeout must be a number from 1 to 3600, not '0'."
ok "serve refuses a bad --trusted-proxy, --max-connections, --head-timeout (exit 2, one line)"

# The per-address limit holds for everyone but trusted proxies (the total limit holds for them).
stop_server
start_server data "$DB" --max-connections-per-address 4 --trusted-proxy 127.0.0.1 --head-timeout 600
run per-address $CLIENT hold "$SERVER_PORT" 127.0.0.2 10 slow-head.req </dev/null
expect_grep per-address "holding 4"
run per-address-proxy $CLIENT hold "$SERVER_PORT" 127.0.0.1 10 slow-head.req </dev/null
expect_grep per-address-proxy "holding 10"
ok "--max-connections-per-address 4: 4 of 10 connections from 127.0.0.2 stay open, all 10 from a trusted proxy"

# With the defaults: 128 honest concurrent connections through one proxy address all succeed.
stop_server
start_server data "$DB"
run honest $CLIENT many "$SERVER_PORT" 127.0.0.8 128 /healthz
expect_grep honest "ok 128 of 128"
ok "128 concurrent connections from one address (a proxy) all answered 200 with the defaults"

# A slowloris from five addresses, 300 connections each (more than the per-address limit), each
# holding a request head open: a sixth client is still answered while they hold. The limits are
# the defaults; the head deadline is long, so that a slow machine opening the 1,500 connections
# does not see the first ones cut (that is part 2).
stop_server
start_server data "$DB" --head-timeout 600
mkfifo hold.in
$CLIENT hold "$SERVER_PORT" 127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6 300 \
  slow-head.req <hold.in >hold.out 2>&1 &
hold_pid=$!
exec 3>hold.in
at_exit "exec 3>&-; kill $hold_pid 2>/dev/null; wait $hold_pid 2>/dev/null"
for _ in $(seq 600); do grep -q holding hold.out && break; sleep 0.1; done
held=$(sed -n 's/^holding //p' hold.out)
[ -n "$held" ] || { cat hold.out >&2; die "the slowloris did not start"; }
# 5 x 256 by the per-address limit; more would mean the limit did not hold.
[ "$held" -gt 1000 ] && [ "$held" -le 1280 ] || die "the slowloris holds $held connections"
body=$(curl -sS --interface 127.0.0.7 --max-time 20 "$SERVER_URL/healthz") ||
  die "the sixth client got no answer while $held connections were held"
[ "$body" = '{"ok":true}' ] || die "the sixth client got '$body'"
kill -0 "$hold_pid" || die "the slowloris ended before the sixth client was answered"
ok "a sixth client (127.0.0.7) is answered while a slowloris holds $held connections"
exec 3>&-
wait "$hold_pid" || true
