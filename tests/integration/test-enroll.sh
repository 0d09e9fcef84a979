#!/usr/bin/env bash
# Enrollment and signed reports, with real processes: nixprov serve on 127.0.0.1, devices run by
# nixprov-agent on directories as their roots, the operator's nixprov fleet. A device enrolls
# with its own keys and waits while pending; approved, it is provisioned; revoked, it stops and
# its reports are refused; a clone of its disk with other keys is refused until the operator
# resets it; the enrollment policy approves by machine id, MAC and enrollment token (which never
# leaves the device); reports that are unsigned, signed by another key, or replayed with other
# content are refused, each with its exact error, and nothing is written on a refused device.
source "$(dirname "$0")/lib.sh"

AGENT=$BIN/nixprov-agent
NIXPROV=$BIN/nixprov
SIGNER=${NIXPROV_TEST_TOOLS:?set NIXPROV_TEST_TOOLS to the build\'s tests directory}/device-sign
M1=11111111111111111111111111111111
M2=22222222222222222222222222222222
M3=33333333333333333333333333333333
M4=44444444444444444444444444444444
M5=55555555555555555555555555555555
M6=66666666666666666666666666666666
DB=$TMP/server.db

mkdir -p data/machines
cat > rebuild <<'EOF'
#!/bin/sh
exit 0
EOF
chmod +x rebuild

publish() { # publish MACHINE SERIAL
  printf 'nixprov: 1\nserial: %s\nexpires: 2099-01-01T00:00:00Z\nmachines: [%s]\n' "$2" "$1" \
    > "data/machines/$1.yaml"
  printf 'strategy: binary-caches\nnix:\n  settings:\n    substituters: []\n' >> "data/machines/$1.yaml"
  minisign -S -s "$KEYS/fleet.sec" -m "data/machines/$1.yaml" -t "serial $2" >/dev/null
}
for m in $M1 $M2 $M3 $M4 $M5 $M6; do publish "$m" 1; done

device() { # device NAME MACHINE [WAIT] [TOKEN-FILE]: a root and an agent configuration
  mkdir -p "$1/etc"
  echo "$2" > "$1/etc/machine-id"
  {
    echo "server: {urls: [$SERVER_URL], deadline: 10, connect-timeout: 2}"
    echo "trusted-keys: [$(tail -n 1 "$KEYS/fleet.pub")]"
    echo "rebuild: {command: $TMP/rebuild}"
    echo "enroll:"
    echo "  wait: ${3:-0}"
    [ -z "${4:-}" ] || echo "  token-file: $4"
  } > "$1.yaml"
}
agent_run() { # agent_run NAME: nixprov-agent run for device NAME
  timeout 120 "$AGENT" run --config "$1.yaml" --root "$1" --cmdline -
}
machine_json() { operator_curl "/v1/machines/$1"; }
state_of() { machine_json "$1" | jq -r .state; }
nothing_written() { # nothing_written NAME: no Nix file under the device's root
  [ ! -e "$1/etc/nix" ] && [ ! -e "$1/etc/nixos" ] || die "$1: files written: $(find "$1/etc")"
}

start_server "$TMP/data" "$DB"

# --- pending -> approved -> provisioned ---------------------------------------------------------
device d1 "$M1" 60
agent_run d1 > d1-first.out 2>&1 &
agent_pid=$!
for _ in $(seq 100); do [ "$(state_of $M1)" = pending ] && break; sleep 0.1; done
[ "$(state_of $M1)" = pending ] || die "M1 is not pending: $(machine_json $M1)"
[ -d d1/etc/nix ] && die "files written before approval"
expect_exit fleet-pending 0 operator_fleet
grep "^$M1" fleet-pending.out | grep -q pending || { cat fleet-pending.out; die "fleet does not show M1 pending"; }
[ "$(curl -s --noproxy '*' -o profile.out -w '%{http_code}' "$SERVER_URL/v1/machines/$M1/profile")" = 401 ] ||
  die "an unsigned request for an enrolled machine's profile was not refused with 401"
grep -qF "machine $M1 is enrolled: its requests must carry X-Nixprov-Proof, signed by its device key" profile.out ||
  die "profile 401: $(cat profile.out)"
[ "$(curl -s --noproxy '*' -o profile.out -w '%{http_code}' \
  -H "$(device_proof d1/var/lib/nixprov "$M1" "/v1/machines/$M1/profile")" \
  "$SERVER_URL/v1/machines/$M1/profile")" = 403 ] || die "a pending machine got its profile"
grep -q "waiting for an operator's approval" profile.out || die "profile 403: $(cat profile.out)"
ok "a new device enrolls and waits: pending in nixprov fleet, its profile refused (401 unsigned, 403 with its proof), nothing written"

sleep 1.5 # at least one more pending answer
expect_exit approve 0 "$NIXPROV" fleet approve "$M1" --db "$DB"
wait $agent_pid || die "run after approval: exit $? ($(cat d1-first.out))"
grep -q "pending: waiting up to" d1-first.out || die "no pending line: $(cat d1-first.out)"
grep -q "provisioned at serial 1" d1-first.out || die "not provisioned: $(cat d1-first.out)"
[ -s d1/etc/nix/nixprov.conf ] || die "nixprov.conf not written"
machine_json $M1 > m1.json
jq -e '.state == "approved" and .decided_by == "operator"' m1.json >/dev/null || die "M1: $(cat m1.json)"
jq -e '[.reports[] | select(.phase == "done" and .status == "ok" and .serial == 1)] | length == 1' \
  m1.json >/dev/null || die "no final report of M1: $(cat m1.json)"
jq -e '[.reports[] | select(.phase == "enroll" and .status == "ok")] | length == 1' m1.json >/dev/null ||
  die "no enroll report"
jq -e --arg k "$(sed -n 2p d1/var/lib/nixprov/device-sign.pub)" '.sign_key == $k' m1.json >/dev/null ||
  die "the server holds another sign key than the device's"
jq -e '(.reports | length) as $n | [.reports[] | select(.signature | type == "string" and length == 88)] | length == $n' \
  m1.json >/dev/null || die "a stored report is not signed"
[ "$(grep -c "Machine $M1 (.*) enrolled: pending; 'nixprov fleet approve $M1' on this host admits it." server.log)" = 1 ] ||
  die "the server did not log the new pending machine exactly once: $(grep "$M1" server.log)"
ok "approved by the operator while waiting: the run goes on and provisions; every report is signed by the enrolled key; the server logged the pending machine once"

# --- pending past the wait: exit 9, nothing written ---------------------------------------------
device d2 "$M2" 0
expect_exit d2-pending 9 agent_run d2
expect_grep d2-pending "not approved within 0 s: machine $M2 is still pending"
expect_grep d2-pending "nixprov fleet approve $M2"
nothing_written d2
expect_exit d2-status 0 "$AGENT" status --config d2.yaml --root d2
expect_grep d2-status "exit code 9, in phase enroll"
expect_grep d2-status "error:       not approved within 0 s: machine $M2 is still pending"
ok "still pending when the wait runs out: exit 9, says how to approve (and status says it too), nothing written"

# --- revoked: the device stops, its reports are refused ----------------------------------------
expect_exit revoke 0 "$NIXPROV" fleet revoke "$M1" --db "$DB"
publish "$M1" 2
cp d1/etc/nix/nixprov.conf conf-before
expect_exit d1-revoked 9 agent_run d1
expect_grep d1-revoked "machine $M1 is revoked by the operator: stopping, nothing is provisioned"
cmp -s conf-before d1/etc/nix/nixprov.conf || die "a revoked device changed its files"
[ "$(state_of $M1)" = revoked ] || die "M1 not revoked"
expect_exit fleet-revoked 0 operator_fleet
grep "^$M1" fleet-revoked.out | grep -q revoked || die "fleet does not show M1 revoked"
pending=$(find d1/var/lib/nixprov/reports -maxdepth 1 -name '*.json' | wc -l)
[ "$pending" -ge 1 ] || die "the revoked run's reports are not spooled"
expect_exit flush-revoked 3 timeout 60 "$AGENT" flush --config d1.yaml --root d1 --cmdline - --deadline 5
expect_grep flush-revoked "revoked"
[ "$(find d1/var/lib/nixprov/reports -maxdepth 1 -name '*.json' | wc -l)" = "$pending" ] ||
  die "the refused reports left the spool"
[ "$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' \
  -H "$(device_proof d1/var/lib/nixprov "$M1" "/v1/machines/$M1/profile")" \
  "$SERVER_URL/v1/machines/$M1/profile")" = 403 ] || die "a revoked machine got its profile"
ok "revoked: the run stops with exit 9 before fetching, files untouched; the server refuses its profile and reports (kept in the spool)"

# --- a clone with other keys is refused until the operator resets the machine ------------------
device clone "$M1" 0
expect_exit clone 9 agent_run clone
expect_grep clone "the server knows machine $M1 with other device keys"
expect_grep clone "nixprov fleet reset $M1"
nothing_written clone
machine_json $M1 > m1.json
jq -e '.state == "revoked" and (.conflict_at | type == "number")' m1.json >/dev/null ||
  die "the conflict changed M1 or was not recorded: $(cat m1.json)"
ok "a cloned disk (same machine id, other keys) is refused: exit 9, the enrolled keys unchanged, the conflict recorded"

before=$(jq '.reports | length' m1.json)
expect_exit reset 0 "$NIXPROV" fleet reset "$M1" --db "$DB"
sleep 1 # an enrollment must be newer than the last accepted one, to the second (freshness)
expect_exit clone-pending 9 agent_run clone
[ "$(state_of $M1)" = pending ] || die "after reset the new key is not pending"
expect_exit approve-clone 0 "$NIXPROV" fleet approve "$M1" --db "$DB"
expect_exit clone-run 0 agent_run clone
machine_json $M1 > m1.json
jq -e --arg k "$(sed -n 2p clone/var/lib/nixprov/device-sign.pub)" '.sign_key == $k' m1.json >/dev/null ||
  die "the reset machine does not hold the new key"
spooled_seqs=$(jq '[.reports[] | select(.seq == 1)] | length' m1.json)
[ "$spooled_seqs" -ge 2 ] || die "the new key's report 1 was dropped as a duplicate of the old one"
[ "$(jq '.reports | length' m1.json)" -gt "$before" ] || die "no new reports stored"
ok "reset: the new keys enroll as pending, are approved and provision; their reports from seq 1 are stored beside the old ones"

# --- signed reports: unsigned, another key, replay with other content -------------------------
post() { # post FILE: POST /v1/reports, prints the status; the answer in post.out
  curl -s --noproxy '*' -o post.out -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "@$1" "$SERVER_URL/v1/reports"
}
count() { machine_json $M1 | jq '.reports | length'; }
n=$(count)
report='{"machine_id":"'$M1'","seq":9000,"phase":"done","status":"ok","time":1700000000}'
printf '%s' "$report" > unsigned.json
[ "$(post unsigned.json)" = 401 ] || die "unsigned report: $(cat post.out)"
grep -q "reports must be signed by the device key" post.out || die "unsigned: $(cat post.out)"
mkdir -p other-state
printf '%s' "$report" | "$SIGNER" other-state nixprov-report-v1 > other.json
[ "$(post other.json)" = 401 ] || die "report signed by another key: $(cat post.out)"
grep -q "report signature does not verify with the key machine $M1 enrolled" post.out ||
  die "wrong key: $(cat post.out)"
printf '%s' "$report" | "$SIGNER" clone/var/lib/nixprov nixprov-report-v1 > good.json
[ "$(post good.json)" = 200 ] || die "a good report: $(cat post.out)"
[ "$(post good.json)" = 200 ] && jq -e '.duplicate == true' post.out >/dev/null ||
  die "the same report again is not a duplicate: $(cat post.out)"
printf '%s' "${report/\"ok\"/\"failed\"}" | "$SIGNER" clone/var/lib/nixprov nixprov-report-v1 > replay.json
[ "$(post replay.json)" = 409 ] || die "other content under a stored seq: $(cat post.out)"
grep -q "report 9000 of machine $M1 was already stored with other content" post.out ||
  die "replay: $(cat post.out)"
sed 's/"phase":"done"/"phase":"fetch"/' good.json > tampered.json
[ "$(post tampered.json)" = 401 ] || die "a changed signed report: $(cat post.out)"
[ "$(count)" = $((n + 1)) ] || die "expected exactly one more report, have $(count) (was $n)"
machine_json $M1 | jq -e '[.reports[] | select(.seq == 9000)] as $r |
  ($r | length) == 1 and $r[0].status == "ok"' >/dev/null || die "report 9000 changed"
ok "reports: unsigned (401), another key (401), changed (401), other content under a stored number (409) refused; the same body again is a duplicate"

# The agent's side of a 401: a device whose keys were lost and made anew signs with a key the
# server does not hold for it; the report is moved to bad/, not retried forever.
mkdir -p lost-keys
mv clone/var/lib/nixprov/device-* lost-keys/
expect_exit lost-key 0 timeout 60 "$AGENT" report --config clone.yaml --root clone --cmdline - \
  --phase done --status ok --message "after the keys were lost"
expect_grep lost-key "Delivered 0 reports; 0 pending."
expect_grep lost-key "Moved 1 report the server refused for good to clone/var/lib/nixprov/reports/bad/."
ls clone/var/lib/nixprov/reports/bad/*.json >/dev/null 2>&1 || die "the refused report is not in bad/"
grep -q "after the keys were lost" clone/var/lib/nixprov/reports/bad/*.json || die "another report in bad/"
mv lost-keys/device-* clone/var/lib/nixprov/
ok "a report signed by a key the server does not hold for the machine is moved to the spool's bad/"

# --- a static web server as the only mirror: nothing to enroll with, the profile still comes ---
mkdir -p "static/v1/machines/$M2"
cp "data/machines/$M2.yaml" "static/v1/machines/$M2/profile"
cp "data/machines/$M2.yaml.minisig" "static/v1/machines/$M2/profile.minisig"
serve_dir static # python's http.server: POST is 501
device static-dev "$M2" 60
sed -i "s|urls: \[$SERVER_URL\]|urls: [http://127.0.0.1:$SERVED_PORT]|" static-dev.yaml
expect_exit static 0 agent_run static-dev
expect_grep static "skipped: no mirror takes enrollments (file:// or static mirrors)"
expect_grep static "provisioned at serial 1"
[ -s static-dev/etc/nix/nixprov.conf ] || die "nothing written from the static mirror"
[ "$(find static-dev/var/lib/nixprov/reports -maxdepth 1 -name '*.json' | wc -l)" -ge 8 ] ||
  die "the reports are not kept in the spool"
ok "a static web server as the mirror: enrollment skipped (it answers POST with 501), provisioned from its files; the reports wait in the spool"

# --- the enrollment policy ----------------------------------------------------------------------
stop_server
ENROLL_TOKEN=nixprov-enroll-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$ENROLL_TOKEN" > server-token
chmod 600 server-token
cat > policy.yaml <<EOF
approve:
  machine-ids: [$M3]
  macs: ["52:54:00:aa:bb:cc"]
  token-files: [$TMP/server-token]
EOF
start_server "$TMP/data" "$DB" --enroll-policy policy.yaml

device d3 "$M3" 0
expect_exit d3 0 agent_run d3
device d4 "$M4" 0
mkdir -p d4/sys/class/net/eth0 d4/sys/class/net/lo
echo 52:54:00:aa:bb:cc > d4/sys/class/net/eth0/address
echo 00:00:00:00:00:00 > d4/sys/class/net/lo/address
expect_exit d4 0 agent_run d4
mkdir -p d5/etc/nixprov
cp server-token d5/etc/nixprov/enroll-token
device d5 "$M5" 0 /etc/nixprov/enroll-token
expect_exit d5 0 agent_run d5
for m in $M3 $M4 $M5; do [ "$(state_of $m)" = approved ] || die "$m not approved by the policy"; done
[ "$(machine_json $M3 | jq -r .decided_by)" = policy:machine-id ] || die "M3: $(machine_json $M3)"
[ "$(machine_json $M4 | jq -r .decided_by)" = policy:mac ] || die "M4: $(machine_json $M4)"
[ "$(machine_json $M5 | jq -r .decided_by)" = policy:token ] || die "M5: $(machine_json $M5)"
machine_json $M4 | jq -e '.facts.macs == ["52:54:00:aa:bb:cc"]' >/dev/null || die "M4's MACs: $(machine_json $M4)"
ok "the enrollment policy approves by machine id, by MAC and by enrollment token; each device provisions at once"

# --- seal --machine: to the key the machine enrolled with, opened by that device ---------------
expect_exit fleet-approved 0 operator_fleet
grep "^$M3" fleet-approved.out | grep -q "approved .* 1 .*done .*ok" ||
  { cat fleet-approved.out; die "fleet does not show M3 approved and provisioned at serial 1"; }
SECRET=cachix-token-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$SECRET" > secret.txt
expect_exit seal-m3 0 "$NIXPROV" seal --machine "$M3" --db "$DB" --file secret.txt
SEALED=$(sed -n 's/^{sealed: \(.*\)}$/\1/p' seal-m3.out)
[ -n "$SEALED" ] || die "seal --machine printed: $(cat seal-m3.out)"
cat >> "data/machines/$M3.yaml" <<EOF
cachix:
  - name: private
    public-key: private.cachix.org-1:$(head -c 32 /dev/urandom | base64)
    auth-token: {sealed: $SEALED}
    host: 127.0.0.1
EOF
sed -i 's/^serial: 1$/serial: 2/' "data/machines/$M3.yaml"
minisign -S -s "$KEYS/fleet.sec" -m "data/machines/$M3.yaml" -t "serial 2" >/dev/null
expect_exit d3-sealed 0 agent_run d3
[ "$(cat d3/etc/nix/nixprov-netrc)" = "machine 127.0.0.1 password $SECRET" ] || die "the sealed token was not opened"
[ "$(stat -c %a d3/etc/nix/nixprov-netrc)" = 600 ] || die "netrc mode"
ok "nixprov seal --machine seals to the box key the machine enrolled with, and that device opens it (netrc 0600)"

mkdir -p d6/etc/nixprov
printf 'not-the-token\n' > d6/etc/nixprov/enroll-token
chmod 600 d6/etc/nixprov/enroll-token
device d6 "$M6" 0 /etc/nixprov/enroll-token
expect_exit d6 9 agent_run d6
[ "$(state_of $M6)" = pending ] || die "a wrong token was approved"
nothing_written d6
expect_exit seal-pending 4 "$NIXPROV" seal --machine "$M6" --db "$DB" --file secret.txt
expect_grep seal-pending "Machine $M6 is pending: approve it first"
chmod 644 d6/etc/nixprov/enroll-token
expect_exit d6-mode 2 agent_run d6
expect_grep d6-mode "enroll failed: the enrollment token d6/etc/nixprov/enroll-token cannot be used: it is readable by others than its owner (it must be mode 0600)"
nothing_written d6
ok "a wrong token leaves the device pending (and seal --machine refuses it, exit 4); a token file readable by others is refused (exit 2); nothing written"

# --- refuse-unmatched: only the devices a rule approves reach the database ---------------------
M7=77777777777777777777777777777777
publish "$M7" 1
stop_server
printf 'refuse-unmatched: true\n' >> policy.yaml
start_server "$TMP/data" "$DB" --enroll-policy policy.yaml
device d7 "$M7" 30
expect_exit d7 9 agent_run d7
expect_grep d7 "the server refuses to enroll machine $M7: its enrollment policy admits only the devices it lists or that carry its enrollment token"
nothing_written d7
[ "$(operator_curl "/v1/machines/$M7" -o /dev/null -w '%{http_code}')" = 404 ] ||
  die "a refused machine is in the database"
device d3 "$M3" 0
publish "$M3" 3
expect_exit d3-again 0 agent_run d3
expect_grep d3-again "provisioned at serial 3"
ok "refuse-unmatched: a device no rule approves is refused at once (exit 9, not waiting), never recorded; approved devices go on"

# The token itself never left the device: not in the server's database, log or answers.
for f in "$DB"* "$TMP/server.log"; do
  ! grep -qaF "$ENROLL_TOKEN" "$f" || die "the enrollment token is in $f"
done
machine_json $M5 | grep -qF "$ENROLL_TOKEN" && die "the enrollment token is in the server's answers"
! grep -rqaF "$ENROLL_TOKEN" d5/var || die "the token is in the device's state"
ok "the enrollment token is nowhere on the server (database, log, answers) nor in the device's state"
