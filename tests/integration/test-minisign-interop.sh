#!/bin/bash
# SPDX-License-Identifier: MIT
# nixprov keygen/sign against the real minisign tool, both ways:
#  - keys made by "minisign -G" (encrypted and -W) sign with "nixprov sign"; "minisign -V" checks;
#  - keys made by "nixprov keygen" (encrypted and -W) sign with "minisign -S"; "minisign -V" checks;
#  - secret key modes, refusing to overwrite, wrong and mismatched passwords, usage errors.
# Signatures made by minisign are checked by nixprov's own code in tests/unit/test-minisign.c
# (fixtures in tests/data/minisign/). Five scrypt derivations at minisign's real parameters
# (about 1 GiB and a few seconds each) are the bulk of the run time.
set -euo pipefail

NIXPROV="${NIXPROV_BIN:?NIXPROV_BIN must name the bin directory of a build}/nixprov"
command -v minisign >/dev/null || { echo "FAIL: the minisign tool is not installed" >&2; exit 1; }
[ -x "$NIXPROV" ] || { echo "FAIL: $NIXPROV is not built" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

pass() { echo "ok - $*"; }
fail() {
        echo "FAIL: $*" >&2
        exit 1
}
mode_of() { stat -c %a "$1"; }

# Runs a command that must fail with exit status $1; its output goes to $tmp/out.
expect_exit() {
        local want=$1 rc=0
        shift
        "$@" >out 2>&1 </dev/null || rc=$?
        [ "$rc" = "$want" ] || { cat out >&2; fail "'$*' exited $rc, expected $want"; }
}

printf 'nixprov: 1\nserial: 7\nstrategy: binary-caches\n' >profile.yaml
printf 'nixprov: 1\nserial: 8\n' >other.yaml

# --- minisign's keys, nixprov's signatures ---

minisign -G -W -p ms-plain.pub -s ms-plain.key >/dev/null
"$NIXPROV" sign -s ms-plain.key profile.yaml
minisign -Vm profile.yaml -p ms-plain.pub >out || fail "minisign -V refused nixprov's signature"
grep -q $'^Trusted comment: timestamp:[0-9]*\tfile:profile.yaml\thashed$' out ||
        fail "unexpected default trusted comment: $(cat out)"
pass "minisign -G -W key: nixprov sign (prehashed) verifies with minisign -V"

"$NIXPROV" sign -l -s ms-plain.key -t "serial:7 legacy" -x legacy.minisig profile.yaml
minisign -Vm profile.yaml -x legacy.minisig -p ms-plain.pub >out ||
        fail "minisign -V refused nixprov's legacy signature"
grep -q '^Trusted comment: serial:7 legacy$' out || fail "trusted comment lost: $(cat out)"
if minisign -H -Vm profile.yaml -x legacy.minisig -p ms-plain.pub >/dev/null 2>&1; then
        fail "minisign -H accepted a signature that should be legacy"
fi
pass "minisign -G -W key: nixprov sign -l (legacy) verifies with minisign -V, and is legacy"

printf 'tampered\n' >>profile.yaml
if minisign -Vm profile.yaml -p ms-plain.pub >/dev/null 2>&1; then
        fail "minisign -V accepted a changed file"
fi
printf 'nixprov: 1\nserial: 7\nstrategy: binary-caches\n' >profile.yaml
pass "a changed file is refused by minisign -V"

printf 'ms secret\nms secret\n' | minisign -G -p ms-enc.pub -s ms-enc.key >/dev/null 2>&1
printf 'ms secret\n' | "$NIXPROV" sign -s ms-enc.key -c "from nixprov" profile.yaml other.yaml
minisign -Vm profile.yaml -p ms-enc.pub >/dev/null || fail "minisign -V refused profile.yaml.minisig"
minisign -Vm other.yaml -p ms-enc.pub >/dev/null || fail "minisign -V refused other.yaml.minisig"
head -1 other.yaml.minisig | grep -qx 'untrusted comment: from nixprov' || fail "untrusted comment"
[ "$(mode_of profile.yaml.minisig)" = 644 ] || fail "signature mode $(mode_of profile.yaml.minisig)"
pass "minisign -G key (encrypted, password on stdin): nixprov sign of two files verifies"

# --- nixprov's keys, minisign's signatures ---

"$NIXPROV" keygen -W -p nx-plain.pub -s nx-plain.key >out
grep -q "^Public key: $(sed -n 2p nx-plain.pub)\$" out || fail "keygen did not print the public key"
[ "$(mode_of nx-plain.key)" = 600 ] || fail "secret key mode $(mode_of nx-plain.key), not 600"
[ "$(mode_of nx-plain.pub)" = 644 ] || fail "public key mode $(mode_of nx-plain.pub), not 644"
pass "nixprov keygen -W: secret key 0600, public key 0644, public key printed"

minisign -S -s nx-plain.key -m other.yaml -x minisign-made.minisig </dev/null >/dev/null
minisign -Vm other.yaml -x minisign-made.minisig -p nx-plain.pub >/dev/null ||
        fail "minisign could not use nixprov's unencrypted key"
minisign -S -l -s nx-plain.key -m other.yaml -x minisign-legacy.minisig </dev/null >/dev/null
minisign -Vm other.yaml -x minisign-legacy.minisig -p nx-plain.pub >/dev/null ||
        fail "minisign could not use nixprov's unencrypted key (legacy)"
pass "nixprov keygen -W key: minisign -S and -S -l sign, minisign -V verifies"

printf 'nx secret\nnx secret\n' | (umask 000 && "$NIXPROV" keygen -p nx-enc.pub -s nx-enc.key -c "ci key") >/dev/null
[ "$(mode_of nx-enc.key)" = 600 ] || fail "secret key mode under umask 000: $(mode_of nx-enc.key)"
head -1 nx-enc.key | grep -qx 'untrusted comment: ci key' || fail "secret key comment"
printf 'nx secret\n' | minisign -S -s nx-enc.key -m profile.yaml -x nx-enc.minisig >/dev/null 2>&1 ||
        fail "minisign -S could not decrypt nixprov's encrypted key"
minisign -Vm profile.yaml -x nx-enc.minisig -p nx-enc.pub >/dev/null ||
        fail "minisign -V refused a signature by nixprov's encrypted key"
pass "nixprov keygen (encrypted, password twice on stdin): minisign -S decrypts and signs, -V verifies"

# --- refusals ---

before=$(sha256sum nx-plain.key nx-plain.pub)
expect_exit 1 "$NIXPROV" keygen -W -p nx-plain.pub -s nx-plain.key
grep -q 'already exists' out || fail "no clear message: $(cat out)"
[ "$(sha256sum nx-plain.key nx-plain.pub)" = "$before" ] || fail "keygen changed existing keys"
expect_exit 1 "$NIXPROV" keygen -W -p fresh.pub -s nx-plain.key
[ ! -e fresh.pub ] || fail "keygen wrote a public key next to an existing secret key"
pass "nixprov keygen refuses to overwrite without -f (exit 1), keys untouched"

(umask 022 && "$NIXPROV" keygen -W -f -p nx-plain.pub -s nx-plain.key >/dev/null)
[ "$(sha256sum nx-plain.key nx-plain.pub)" != "$before" ] || fail "keygen -f did not replace"
[ "$(mode_of nx-plain.key)" = 600 ] || fail "replaced secret key mode $(mode_of nx-plain.key)"
pass "nixprov keygen -f replaces the pair, secret key still 0600"

ln -s victim sym.key
expect_exit 1 "$NIXPROV" keygen -W -p sym.pub -s sym.key
"$NIXPROV" keygen -W -f -p sym.pub -s sym.key >/dev/null
[ ! -e victim ] && [ ! -L sym.key ] && [ "$(mode_of sym.key)" = 600 ] ||
        fail "keygen wrote through a symbolic link"
pass "nixprov keygen never writes through a symbolic link (refused, or replaced with -f)"

printf 'one\ntwo\n' >mismatch
rc=0
"$NIXPROV" keygen -p mm.pub -s mm.key <mismatch >out 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q 'do not match' out || fail "mismatched passwords: exit $rc, $(cat out)"
[ ! -e mm.key ] && [ ! -e mm.pub ] || fail "keygen wrote keys after mismatched passwords"
pass "nixprov keygen refuses mismatched passwords (exit 1), writes nothing"

printf 'not the password\n' >wrong-password
expect_exit 1 "$NIXPROV" sign -s nx-enc.key --password-file wrong-password -x wrong.minisig other.yaml
grep -q 'Wrong password' out || fail "no clear message for a wrong password: $(cat out)"
[ ! -e wrong.minisig ] || fail "a signature was written with a wrong password"
pass "nixprov sign with a wrong password (--password-file) fails (exit 1) with a clear message"

expect_exit 1 "$NIXPROV" sign -s ms-enc.key other.yaml
grep -q 'No password given' out || fail "empty stdin: $(cat out)"
pass "nixprov sign with an encrypted key and no password on stdin fails (exit 1)"

expect_exit 2 "$NIXPROV" sign -s nx-plain.key -x one.minisig profile.yaml other.yaml
expect_exit 2 "$NIXPROV" sign profile.yaml
expect_exit 2 "$NIXPROV" keygen -p only.pub
expect_exit 2 "$NIXPROV" sign -s nx-plain.key -t $'two\nlines' profile.yaml
expect_exit 1 "$NIXPROV" sign -s profile.yaml other.yaml
grep -q 'not a minisign secret key' out || fail "a profile taken for a key: $(cat out)"
pass "usage errors exit 2; a file that is not a secret key exits 1"

"$NIXPROV" keygen --help | grep -q 'Exit status' || fail "keygen --help"
"$NIXPROV" sign --help | grep -q 'Exit status' || fail "sign --help"
pass "keygen and sign --help"

echo "all minisign interoperability checks passed"
