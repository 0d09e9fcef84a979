#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Enrollment freshness and keys that changed since an approval, with the real nixprov serve,
# curl and nixprov seal, on 127.0.0.1 only: a replayed or stale enrollment is refused and
# changes nothing; after 'nixprov fleet reset', a stranger who enrolls the machine's id first
# (and is approved by a policy that names it) gets no secret from 'nixprov seal --machine'.
source "$(dirname "$0")/lib.sh"
export no_proxy='*' NO_PROXY='*'
[ -x "$DEVICE_SIGN" ] || die "no $DEVICE_SIGN (build with NIXPROV_TESTS=ON)"

M=0123456789abcdef0123456789abcdef
DB=$TMP/db/nixprov.db
mkdir -p data db dev stranger
echo "profile: default" > data/default.yaml
echo "sig: default" > data/default.yaml.minisig
printf 'approve:\n  machine-ids: [%s]\n' "$M" > policy.yaml
start_server "$TMP/data" "$DB" --enroll-policy "$TMP/policy.yaml"

# enrollment DEV TIME HOSTNAME: the signed enrollment of the device keys in DEV, into DEV.TIME.json.
enrollment() {
  local keys
  read -r -a keys < <("$DEVICE_SIGN" "$TMP/$1" --keys)
  printf '{"machine_id":"%s","hostname":"%s","macs":["02:00:00:00:00:01"],"system":"x86_64-linux","cpus":2,"memory":4294967296,"sign_key":"%s","box_key":"%s","time":%s}' \
    "$M" "$3" "${keys[0]}" "${keys[1]}" "$2" | "$DEVICE_SIGN" "$TMP/$1" nixprov-enroll-v1 > "$1.$2.json"
}
# post FILE: POST /v1/enroll with FILE's bytes; sets code, the answer in post.out.
post() {
  code=$(curl -s --noproxy '*' -o post.out -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "@$1" "$SERVER_URL/v1/enroll")
}
# expect CODE ERROR: the last answer is CODE with exactly ERROR.
expect() {
  [ "$code" = "$1" ] || die "expected $1, got $code: $(cat post.out)"
  [ "$(jq -r .error post.out)" = "$2" ] || die "expected '$2', got: $(cat post.out)"
}
machine() { operator_curl "/v1/machines/$M" -f > "$1" || die "GET /v1/machines/$M failed"; }

now=$(date +%s)
T1=$((now - 10)) T2=$((now - 5))
enrollment dev "$T1" first
enrollment dev "$T2" second
post dev.$T1.json
[ "$code" = 200 ] && [ "$(jq -r .state post.out)" = approved ] || die "first enrollment: $code $(cat post.out)"
post dev.$T2.json
[ "$code" = 200 ] || die "second enrollment: $code $(cat post.out)"
post dev.$T2.json
[ "$code" = 200 ] || die "the same enrollment again (the device asking again): $code $(cat post.out)"
machine before.json
[ "$(jq -r .hostname before.json)" = second ] || die "facts: $(cat before.json)"
ok "enrollments newer than the last one are taken; the same one again is answered its state"

post dev.$T1.json
expect 409 "enrollment time $T1 is not newer than the last accepted enrollment of machine $M ($T2): a replay; nothing changed"
machine after.json
cmp -s before.json after.json || { diff before.json after.json >&2; die "a replay changed the machine"; }
grep -qF "Machine $M: an enrollment of time $T1 refused, not newer than the last accepted one ($T2): a replay?" server.log ||
  die "the server did not log the replay: $(cat server.log)"
ok "a replayed older enrollment -> 409 with the reason, the stored machine unchanged (byte for byte)"

for t in $((now - 400)) $((now + 400)); do
  enrollment dev "$t" stale
  post dev.$t.json
  code_time=$(jq -r .error post.out | grep -o '(\([0-9]*\))' | tr -d '()')
  expect 400 "enrollment time $t is more than 300 s from the server's clock ($code_time): a replay, or the device's clock is wrong"
  [ $((code_time - now)) -ge 0 ] && [ $((code_time - now)) -lt 60 ] || die "server clock $code_time"
done
machine after.json
cmp -s before.json after.json || die "a stale enrollment changed the machine"
ok "an enrollment 400 s old or ahead -> 400 with the reason, nothing changed"

echo "cachix-token-$RANDOM$RANDOM" > secret
expect_exit seal-ok 0 "$BIN/nixprov" seal --machine "$M" --db "$DB" --file secret
expect_grep seal-ok "{sealed: "
ok "seal --machine seals to a machine that holds the keys it was approved with"

# The issue's sequence: reset, a stranger enrolls the listed id first, the policy approves it.
expect_exit reset 0 "$BIN/nixprov" fleet reset "$M" --db "$DB"
post dev.$T2.json
expect 409 "enrollment time $T2 is not newer than the last accepted enrollment of machine $M ($T2): a replay; nothing changed"
machine reset.json
[ "$(jq -r .state reset.json)" = unenrolled ] || die "a replay after the reset put the old key back: $(cat reset.json)"
ok "the device's last enrollment replayed after a reset -> 409, the machine stays unenrolled"

T3=$(date +%s)
enrollment stranger "$T3" stranger
post stranger.$T3.json
[ "$code" = 200 ] && [ "$(jq -r .state post.out)" = approved ] || die "stranger: $code $(cat post.out)"
expect_exit seal-stranger 4 "$BIN/nixprov" seal --machine "$M" --db "$DB" --file secret
expect_grep seal-stranger "Machine $M holds other keys than when it was approved (reset and enrolled again, maybe by another device): confirm them with 'nixprov fleet approve $M', or pass --accept-changed-keys."
! grep -q "sealed" seal-stranger.out || die "something was sealed to the stranger"
ok "after reset, a stranger approved by the policy under the id: seal --machine refuses (exit 4), nothing sealed"

expect_exit seal-accept 0 "$BIN/nixprov" seal --machine "$M" --db "$DB" --file secret --accept-changed-keys
expect_grep seal-accept "{sealed: "
expect_grep seal-accept "sealing to them anyway (--accept-changed-keys)"
expect_exit approve 0 "$BIN/nixprov" fleet approve "$M" --db "$DB"
expect_exit seal-approved 0 "$BIN/nixprov" seal --machine "$M" --db "$DB" --file secret
ok "--accept-changed-keys seals anyway (with a warning); 'fleet approve' confirms the new keys"

! grep -rqF "$(cat secret)" server.log db/ || die "the secret reached the server"
ok "done"
