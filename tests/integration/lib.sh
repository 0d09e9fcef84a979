# Sourced by the integration tests: common set-up, checks, and golden-file comparison.
# Each test runs in its own scratch directory, removed on exit (kept with KEEP_TMP=1).
set -euo pipefail

BIN=${NIXPROV_BIN:?"set NIXPROV_BIN to the build's bin directory"}
SRC=${NIXPROV_SRC:?set NIXPROV_SRC to the source tree}
KEYS=$SRC/tests/data/keys
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

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
