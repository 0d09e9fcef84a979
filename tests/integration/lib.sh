# Sourced by the integration tests: common set-up, checks, and golden-file comparison.
# Each test runs in its own scratch directory, removed on exit (kept with KEEP_TMP=1).
set -euo pipefail

BIN=${NIXPROV_BIN:?"set NIXPROV_BIN to the build's bin directory"}
SRC=${NIXPROV_SRC:?set NIXPROV_SRC to the source tree}
KEYS=$SRC/tests/data/keys
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
# The Debian programs scripts/setup.sh installs come first: a version manager's shims (pyenv's
# python3 is a chain of shell scripts) cost seconds per call on a loaded machine.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

TMP=$(mktemp -d "/tmp/nixprov-$(basename "$0" .sh).XXXXXX")
_cleanups=()
_on_exit() {
  local c
  for c in "${_cleanups[@]}"; do eval "$c" || true; done
  [ "${KEEP_TMP:-0}" = 1 ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap _on_exit EXIT
at_exit() { _cleanups+=("$1"); }
cd "$TMP"

checks=0
ok() { checks=$((checks + 1)); printf 'ok %d - %s\n' "$checks" "$*"; }
die() { printf 'FAIL - %s\n' "$*" >&2; exit 1; }

# run NAME CMD...: runs CMD, keeps its exit code in $rc and its stdout+stderr in NAME.out.
run() {
  local name=$1
  shift
  rc=0
  "$@" >"$name.out" 2>&1 || rc=$?
}

# expect_exit NAME CODE CMD...: runs CMD and checks its exit code.
expect_exit() {
  local name=$1 code=$2
  shift 2
  run "$name" "$@"
  [ "$rc" -eq "$code" ] || { cat "$name.out" >&2; die "$name: exit $rc, expected $code"; }
}

# golden NAME: compares NAME.out (after the caller's normalization) with
# tests/data/<test>/NAME.out; UPDATE_GOLDEN=1 rewrites the golden file instead.
golden() {
  local name=$1 dir=$SRC/tests/data/${GOLDEN_DIR:?}
  if [ "${UPDATE_GOLDEN:-0}" = 1 ]; then
    mkdir -p "$dir"
    cp "$name.out" "$dir/$name.out"
    return 0
  fi
  diff -u "$dir/$name.out" "$name.out" >&2 || die "$name: output differs from $dir/$name.out"
}

# expect_grep NAME PATTERN: NAME.out must contain the fixed string PATTERN.
expect_grep() {
  grep -qF -- "$2" "$1.out" || { cat "$1.out" >&2; die "$1: no '$2' in the output"; }
}

# ---- Real Nix, binary caches and servers on 127.0.0.1 -----------------------------------------

# This host, not any profile: Debian's single-user Nix as root, without nixbld users or a
# sandbox. Every Nix call in a test also sets substituters (empty, or a cache on 127.0.0.1).
HOST_NIX="build-users-group =
sandbox = false
connect-timeout = 5"
CLOSURE=$SRC/tests/data/nix/closure.nix

nixcall() {
  NIX_CONFIG="$HOST_NIX
substituters =
experimental-features = nix-command" timeout 120 "$@"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http URL: up to 5 s for URL to answer.
# wait_for_file FILE: waits (up to 30 s) until FILE exists, e.g. a helper's "listening" mark.
wait_for_file() {
  local i
  for ((i = 0; i < 300; i++)); do
    [ -e "$1" ] && return 0
    sleep 0.1
  done
  die "$1 did not appear within 30 s"
}

wait_http() {
  local _
  for _ in $(seq 50); do
    curl -fs --noproxy '*' "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "nothing answers at $1"
}

# make_cache NONCE: builds the test closure with NONCE, copies it into a signed binary cache in
# $TMP/cache-NONCE, and deletes it from the store again, so only a substituter can give it back.
# Sets CACHE_DIR, CACHE_PUB (the trusted public key) and CLOSURE_PATHS.
make_cache() {
  local nonce=$1 out
  CACHE_DIR=$TMP/cache-$nonce
  out=$(nixcall nix-build --no-out-link "$CLOSURE" --argstr nonce "$nonce" 2>"$TMP/cache.err") ||
    { cat "$TMP/cache.err" >&2; die "building the closure for the cache failed"; }
  nixcall nix-store --generate-binary-cache-key "nixprov-test-$nonce" "$TMP/cache-$nonce.sec" \
    "$TMP/cache-$nonce.pub"
  nixcall nix copy --to "file://$CACHE_DIR?secret-key=$TMP/cache-$nonce.sec" "$out" 2>"$TMP/cache.err" ||
    { cat "$TMP/cache.err" >&2; die "nix copy failed"; }
  mapfile -t CLOSURE_PATHS < <(nixcall nix-store -qR "$out")
  forget_closure
  CACHE_PUB=$(cat "$TMP/cache-$nonce.pub")
}

# forget_closure: removes CLOSURE_PATHS from the store.
forget_closure() {
  local p
  nixcall nix-store --delete "${CLOSURE_PATHS[@]}" >/dev/null 2>"$TMP/delete.err" ||
    { cat "$TMP/delete.err" >&2; die "nix-store --delete failed"; }
  for p in "${CLOSURE_PATHS[@]}"; do [ ! -e "$p" ] || die "$p is still in the store"; done
}

# serve_dir DIR: serves DIR over HTTP on 127.0.0.1; sets SERVED_PORT.
serve_dir() {
  SERVED_PORT=$(free_port)
  (cd "$1" && exec python3 -m http.server --bind 127.0.0.1 "$SERVED_PORT") >"$TMP/http-$SERVED_PORT.log" 2>&1 &
  at_exit "kill $! 2>/dev/null; wait $! 2>/dev/null"
  wait_http "http://127.0.0.1:$SERVED_PORT/"
}

# approve_machines ID...: start_server runs the server with an enrollment policy that approves
# these machines as they enroll (tests of other things than enrollment).
SERVER_OPTS=()
approve_machines() {
  { echo "approve:"; echo "  machine-ids: [$(IFS=,; echo "$*")]"; } > "$TMP/enroll-policy.yaml"
  SERVER_OPTS=(--enroll-policy "$TMP/enroll-policy.yaml")
}

# start_server DATA [DB [OPTION...]]: the real nixprov serve on 127.0.0.1 with a port it picks,
# with more options if given (and SERVER_OPTS); sets SERVER_PID, SERVER_PORT, SERVER_URL and
# OPERATOR_TOKEN_FILE (the one serve makes beside the database).
start_server() {
  local data=$1 db=${2:-$1/nixprov.db} _
  shift $(($# < 2 ? $# : 2))
  OPERATOR_TOKEN_FILE=$(dirname "$db")/operator.token
  rm -f "$TMP/server.port"
  "$BIN/nixprov" serve --listen 127.0.0.1:0 --data "$data" --db "$db" --port-file "$TMP/server.port" \
    "${SERVER_OPTS[@]}" "$@" >>"$TMP/server.log" 2>&1 &
  SERVER_PID=$!
  at_exit "kill $SERVER_PID 2>/dev/null; wait $SERVER_PID 2>/dev/null"
  for _ in $(seq 100); do [ -s "$TMP/server.port" ] && break; sleep 0.05; done
  [ -s "$TMP/server.port" ] || { cat "$TMP/server.log" >&2; die "nixprov serve did not start"; }
  SERVER_PORT=$(cat "$TMP/server.port")
  SERVER_URL=http://127.0.0.1:$SERVER_PORT
}

# operator_curl PATH [CURL_OPTION...]: GET SERVER_URL/PATH (to stdout) with the operator's bearer
# token from OPERATOR_TOKEN_FILE. The token goes through a 0600 header file, never argv.
operator_curl() {
  local path=$1 token
  shift
  token=$(<"$OPERATOR_TOKEN_FILE")
  (umask 077 && printf 'Authorization: Bearer %s\n' "$token" > "$TMP/operator.header")
  curl -s --noproxy '*' -H @"$TMP/operator.header" "$@" "$SERVER_URL$path"
}

# device_proof STATE_DIR MACHINE TARGET [TIME]: the X-Nixprov-Proof header a device with the keys
# in STATE_DIR sends for GET TARGET (the decoded path and query) at TIME (default: now).
DEVICE_SIGN=${NIXPROV_TEST_TOOLS:-$BIN/../tests}/device-sign
device_proof() {
  printf 'X-Nixprov-Proof: %s' "$("$DEVICE_SIGN" "$1" --proof GET "$3" "$2" "${4:-$(date +%s)}")"
}

# nixprov_curl ARG...: curl with what the agent and nixprov fleet send: on a profile request of
# nixprov serve (SERVER_URL/v1/machines/ID/profile...), the proof of the device whose state is
# $STATE for machine $MACHINE (over the path without the query; HEAD for -I); on an operator
# endpoint, the operator token. A test that curls both defines curl() { nixprov_curl "$@"; }.
nixprov_curl() {
  local a url="" method=GET target extra=()
  for a in "$@"; do
    case $a in http://*) url=$a ;; -I | -*[!-]I) method=HEAD ;; esac
  done
  case $url in
  "$SERVER_URL"/v1/machines/*/profile*)
    target=${url#"$SERVER_URL"}
    target=${target%%\?*}
    extra=(-H "X-Nixprov-Proof: $("$DEVICE_SIGN" "$STATE" --proof "$method" "$target" "$MACHINE" "$(date +%s)")")
    ;;
  "$SERVER_URL"/v1/machines* | "$SERVER_URL"/metrics)
    (umask 077 && printf 'Authorization: Bearer %s\n' "$(<"$OPERATOR_TOKEN_FILE")" >"$TMP/operator.header")
    extra=(-H @"$TMP/operator.header")
    ;;
  esac
  command curl "${extra[@]}" "$@"
}

# operator_fleet [ARG...]: nixprov fleet against SERVER_URL with the operator token.
operator_fleet() {
  "$BIN/nixprov" fleet --server "$SERVER_URL" --token-file "$OPERATOR_TOKEN_FILE" "$@"
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
}
