#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# nixprov check against golden files: the example profiles pass; every malformed profile under
# tests/data/profiles/bad fails with exit code 4 and exactly the error line of its .expected
# file; a file over 1 MiB and a missing file fail with their own messages and codes.
set -euo pipefail

: "${NIXPROV_BIN:?NIXPROV_BIN must point at the directory holding nixprov}"
: "${NIXPROV_SRC:?NIXPROV_SRC must point at the source tree}"
nixprov="$NIXPROV_BIN/nixprov"
examples="$NIXPROV_SRC/configs/profiles"
bad="$NIXPROV_SRC/tests/data/profiles/bad"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

failures=0
fail() {
        echo "FAIL: $*" >&2
        failures=$((failures + 1))
}

# Runs nixprov check in directory $1 with the remaining arguments; sets rc, $tmp/out and
# $tmp/err.
check_in() {
        local dir=$1
        shift
        rc=0
        (cd "$dir" && exec "$nixprov" check "$@") >"$tmp/out" 2>"$tmp/err" || rc=$?
}

# The examples pass, each with its ok line.
for f in binary-caches source remote-builders; do
        check_in "$examples" "$f.yaml"
        [[ $rc -eq 0 ]] || fail "$f.yaml: exit $rc: $(cat "$tmp/err")"
        grep -q "^$f.yaml: ok (serial [0-9]*, strategy [a-z-]*, expires 2099-" "$tmp/out" ||
                fail "$f.yaml: no ok line: $(cat "$tmp/out")"
        [[ ! -s $tmp/err ]] || fail "$f.yaml: unexpected stderr: $(cat "$tmp/err")"
done
check_in "$examples" --quiet binary-caches.yaml source.yaml remote-builders.yaml
[[ $rc -eq 0 && ! -s $tmp/out && ! -s $tmp/err ]] || fail "--quiet: exit $rc, output $(cat "$tmp/out" "$tmp/err")"
check_in . - <"$examples/source.yaml"
[[ $rc -eq 0 ]] && grep -q '^-: ok' "$tmp/out" || fail "stdin: exit $rc"

# Every malformed profile: exit 4 and exactly its golden error line. Run from the directory so
# that FILE is the bare name.
n=0
for f in "$bad"/*.yaml; do
        name=$(basename "$f")
        expected="${f%.yaml}.expected"
        n=$((n + 1))
        if [[ ! -f $expected ]]; then
                fail "$name: no golden file ${expected##*/}"
                continue
        fi
        check_in "$bad" "$name"
        [[ $rc -eq 4 ]] || fail "$name: exit $rc, expected 4"
        [[ ! -s $tmp/out ]] || fail "$name: unexpected stdout: $(cat "$tmp/out")"
        if ! cmp -s "$expected" "$tmp/err"; then
                fail "$name: stderr differs from ${expected##*/}:"
                diff -u "$expected" "$tmp/err" >&2 || true
        fi
done
[[ $n -ge 20 ]] || fail "only $n malformed profiles found in $bad"

# All files are checked, every error reported: a mix gives 4 and one line per bad file.
check_in "$bad" alias.yaml "$examples/source.yaml" tag.yaml
[[ $rc -eq 4 ]] || fail "mixed: exit $rc, expected 4"
[[ $(wc -l <"$tmp/err") -eq 2 ]] || fail "mixed: expected 2 error lines: $(cat "$tmp/err")"
grep -q "source.yaml: ok" "$tmp/out" || fail "mixed: the valid file was not reported ok"

# Over 1 MiB: refused before parsing, with a message that names the file.
{
        cat "$examples/source.yaml"
        head -c $((1024 * 1024)) /dev/zero | tr '\0' '#'
} >"$tmp/huge.yaml"
check_in "$tmp" huge.yaml
[[ $rc -eq 4 ]] || fail "huge.yaml: exit $rc, expected 4"
[[ "$(cat "$tmp/err")" == "huge.yaml: larger than 1 MiB (1048576 bytes), the limit for a profile" ]] ||
        fail "huge.yaml: $(cat "$tmp/err")"

# A missing file cannot be read: exit 1, and a missing file wins over an invalid one.
check_in "$tmp" does-not-exist.yaml
[[ $rc -eq 1 ]] || fail "missing file: exit $rc, expected 1"
grep -q "does-not-exist.yaml: No such file or directory" "$tmp/err" || fail "missing file: $(cat "$tmp/err")"
check_in "$bad" alias.yaml does-not-exist.yaml
[[ $rc -eq 1 ]] || fail "missing and invalid: exit $rc, expected 1"

# Usage.
check_in .
[[ $rc -eq 2 ]] || fail "no file: exit $rc, expected 2"
check_in . --frobnicate x.yaml
[[ $rc -eq 2 ]] || fail "unknown option: exit $rc, expected 2"
check_in . --help
[[ $rc -eq 0 ]] && grep -q "Usage: nixprov check" "$tmp/out" || fail "--help: exit $rc"

if [[ $failures -gt 0 ]]; then
        echo "$failures check(s) failed" >&2
        exit 1
fi
echo "ok: examples, $n malformed profiles, size limit, missing file, usage"
