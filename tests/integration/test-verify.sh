#!/usr/bin/env bash
# nixprov verify and nixprov-agent verify, against profiles signed by the real minisign tool and
# by nixprov sign: every refusal of the trust rules, with its exact message (golden files).
source "$(dirname "$0")/lib.sh"
GOLDEN_DIR=verify
MACHINE=0123456789abcdef0123456789abcdef
OTHER=fedcba9876543210fedcba9876543210

profile() { # serial expires binding
  printf 'nixprov: 1\nserial: %s\nexpires: %s\n%s\nstrategy: binary-caches\n' "$1" "$2" "$3"
}
agent_verify() { "$BIN/nixprov-agent" verify --machine-id "$MACHINE" --state state "$@"; }
mkdir state

# --- accepted ---------------------------------------------------------------------------------
profile 7 2099-01-01T00:00:00Z "machines: [$MACHINE]" > good.yaml
minisign -S -s "$KEYS/fleet.sec" -m good.yaml -t "fleet profile 7" >/dev/null
expect_exit minisign-signed 0 "$BIN/nixprov" verify -p "$KEYS/fleet.pub" good.yaml
golden minisign-signed
expect_exit agent-minisign-signed 0 agent_verify --key "$KEYS/fleet.pub" good.yaml
golden agent-minisign-signed
ok "a profile signed by minisign -S (prehashed) verifies with nixprov and nixprov-agent"

profile 7 2099-01-01T00:00:00Z "machines: [$MACHINE]" > legacy.yaml
minisign -S -l -s "$KEYS/fleet.sec" -m legacy.yaml >/dev/null
expect_exit legacy 0 agent_verify --key "$KEYS/fleet.pub" legacy.yaml
ok "a legacy (Ed) minisign signature verifies"

profile 7 2099-01-01T00:00:00Z "groups: [edge]" > ours.yaml
expect_exit sign 0 "$BIN/nixprov" sign -s "$KEYS/fleet.sec" -t "ours" ours.yaml
expect_exit minisign-verifies-ours 0 minisign -V -p "$KEYS/fleet.pub" -m ours.yaml
expect_grep minisign-verifies-ours "Signature and comment signature verified"
expect_exit agent-group 0 agent_verify --key "$KEYS/fleet.pub" --group lab --group edge ours.yaml
ok "a profile signed by nixprov sign verifies with minisign -V, and binds by group"

expect_exit rotated 0 agent_verify --key "$KEYS/rotated.pub" --key "$KEYS/fleet.pub" good.yaml
expect_exit inline-key 0 "$BIN/nixprov" verify -P "$(tail -n 1 "$KEYS/fleet.pub")" good.yaml
ok "several trusted keys (rotation); a key given inline as its base64 line"

printf 'serial 7\napplied-at 1700000000\n' > state/applied
expect_exit same-serial 0 agent_verify --key "$KEYS/fleet.pub" good.yaml
golden same-serial
profile 8 2099-01-01T00:00:00Z "machines: [$MACHINE]" > update.yaml
minisign -S -s "$KEYS/fleet.sec" -m update.yaml -t "fleet profile 8" >/dev/null
expect_exit update 0 agent_verify --key "$KEYS/fleet.pub" update.yaml
golden update
ok "the applied serial is nothing to do; a higher serial is an update"

# --- refused: each with its own message, exit 4 -----------------------------------------------
printf 'serial 8\napplied-at 1700000000\n' > state/applied
expect_exit rollback 4 agent_verify --key "$KEYS/fleet.pub" good.yaml
golden rollback
rm state/applied
ok "rollback refused"

profile 7 2020-01-01T00:00:00Z "machines: [$MACHINE]" > expired.yaml
minisign -S -s "$KEYS/fleet.sec" -m expired.yaml >/dev/null
expect_exit expired 4 agent_verify --key "$KEYS/fleet.pub" expired.yaml
sed -i -E 's/trusted time now [0-9TZ:-]+/trusted time now NOW/' expired.out
golden expired
ok "expired profile refused"

profile 7 2099-01-01T00:00:00Z "machines: [$OTHER]" > other-machine.yaml
minisign -S -s "$KEYS/fleet.sec" -m other-machine.yaml >/dev/null
expect_exit other-machine 4 agent_verify --key "$KEYS/fleet.pub" --group edge other-machine.yaml
golden other-machine
ok "another machine's profile refused"

expect_exit wrong-key 4 "$BIN/nixprov" verify -p "$KEYS/other.pub" good.yaml
golden wrong-key
expect_exit agent-wrong-key 4 agent_verify --key "$KEYS/other.pub" good.yaml
golden agent-wrong-key
ok "a profile signed by an untrusted key refused"

# A forgery: the other key's signature, relabelled with the trusted key's id.
cp good.yaml forged.yaml
minisign -S -s "$KEYS/other.sec" -m forged.yaml -x forged.other >/dev/null
python3 - "$KEYS/fleet.pub" forged.other forged.yaml.minisig <<'PY'
import base64, sys
key_id = base64.b64decode(open(sys.argv[1]).read().splitlines()[1])[2:10]
lines = open(sys.argv[2]).read().splitlines()
raw = bytearray(base64.b64decode(lines[1]))
raw[2:10] = key_id
lines[1] = base64.b64encode(bytes(raw)).decode()
open(sys.argv[3], "w").write("\n".join(lines) + "\n")
PY
expect_exit forged 4 agent_verify --key "$KEYS/fleet.pub" forged.yaml
golden forged
ok "a forged signature (another key's, under the trusted key id) refused"

sed 's/serial: 7/serial: 9/' good.yaml > flipped.yaml
cp good.yaml.minisig flipped.yaml.minisig
expect_exit flipped 4 "$BIN/nixprov" verify -p "$KEYS/fleet.pub" flipped.yaml
golden flipped
ok "a changed byte in the profile refused"

cp good.yaml comment.yaml
sed 's/^trusted comment: fleet profile 7$/trusted comment: fleet profile 9/' good.yaml.minisig > comment.yaml.minisig
cmp -s good.yaml.minisig comment.yaml.minisig && die "the trusted comment was not changed"
expect_exit comment 4 agent_verify --key "$KEYS/fleet.pub" comment.yaml
golden comment
ok "a changed trusted comment refused"

cp good.yaml garbage.yaml
printf 'untrusted comment: hello\nnot base64 at all\n' > garbage.yaml.minisig
expect_exit garbage 4 agent_verify --key "$KEYS/fleet.pub" garbage.yaml
golden garbage
cp good.yaml nosig.yaml
expect_exit nosig 4 agent_verify --key "$KEYS/fleet.pub" nosig.yaml
golden nosig
ok "a malformed or missing signature refused"

printf 'nixprov: 1\nserial: 7\nexpires: 2099-01-01T00:00:00Z\nmachines: [%s]\nstrategy: fastest\n' \
  "$MACHINE" > invalid.yaml
minisign -S -s "$KEYS/fleet.sec" -m invalid.yaml >/dev/null
expect_exit invalid 4 agent_verify --key "$KEYS/fleet.pub" invalid.yaml
golden invalid
ok "a signed but invalid profile refused with file:line:column and key"

{ profile 7 2099-01-01T00:00:00Z "machines: [$MACHINE]"; head -c 1100000 /dev/zero | tr '\0' '#'; } > big.yaml
minisign -S -s "$KEYS/fleet.sec" -m big.yaml >/dev/null
expect_exit big 4 agent_verify --key "$KEYS/fleet.pub" big.yaml
golden big
expect_exit big-nixprov 4 "$BIN/nixprov" verify -p "$KEYS/fleet.pub" big.yaml
ok "a profile over 1 MiB refused before anything else"

# --- any single-byte change is refused ---------------------------------------------------------
# Every byte of the profile, and every byte of the signature file except the text of its first
# line: minisign's "untrusted comment" is, by design, not signed.
size=$(stat -c %s good.yaml)
# flip FILE DIR: DIR/N is FILE with the lowest bit of byte N flipped, for every byte N (one
# python3 for all of them: a process per byte made this test take minutes on a loaded machine).
flip() {
  mkdir -p "$2"
  python3 -c 'import sys
b = open(sys.argv[1], "rb").read()
for i in range(len(b)):
    m = bytearray(b); m[i] ^= 1
    open("%s/%d" % (sys.argv[2], i), "wb").write(m)' "$1" "$2"
}
flip good.yaml flipped-profile
cp good.yaml.minisig mutated.yaml.minisig
for ((i = 0; i < size; i++)); do
  cp "flipped-profile/$i" mutated.yaml
  run mutated agent_verify --quiet --key "$KEYS/fleet.pub" mutated.yaml
  [ "$rc" -eq 4 ] || die "profile byte $i flipped: exit $rc"
done
ok "each of the $size bytes of the profile, flipped, is refused"

first_line=$(head -n 1 good.yaml.minisig | wc -c)
size=$(stat -c %s good.yaml.minisig)
cp good.yaml mutated.yaml
flip good.yaml.minisig flipped-signature
for ((i = 0; i < size; i++)); do
  # keep "untrusted comment: " itself under test, skip only the free text after it
  if ((i >= 19 && i < first_line - 1)); then continue; fi
  cp "flipped-signature/$i" mutated.yaml.minisig
  run mutated agent_verify --quiet --key "$KEYS/fleet.pub" mutated.yaml
  [ "$rc" -eq 4 ] || die "signature byte $i flipped: exit $rc"
done
ok "each signed byte of the signature file, flipped, is refused"

# --- usage errors: exit 2 ----------------------------------------------------------------------
expect_exit no-key 2 agent_verify good.yaml
expect_exit bad-key 2 agent_verify --key /nonexistent good.yaml
expect_exit bad-machine 2 "$BIN/nixprov-agent" verify --key "$KEYS/fleet.pub" --machine-id xyz good.yaml
printf 'serial seven\n' > state/applied
expect_exit damaged-state 2 agent_verify --key "$KEYS/fleet.pub" good.yaml
golden damaged-state
rm state/applied
expect_exit help 0 "$BIN/nixprov-agent" verify --help
expect_grep help "Exit codes"
ok "usage and configuration errors exit 2"

echo "$checks passed, 0 failed"
