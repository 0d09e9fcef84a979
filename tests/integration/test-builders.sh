#!/usr/bin/env bash
# Remote builders, probed over SSH with libssh against a real OpenSSH sshd that this test starts
# on 127.0.0.1 with its own host key and authorized key: nixprov-agent builders (ok, a changed
# host key, sshd stopped, a silent port, a wrong identity) and the builders phase of
# nixprov-agent run (the report, the machines file, exit 6 with nothing written).
source "$(dirname "$0")/lib.sh"
[ -x /usr/sbin/sshd ] || die "/usr/sbin/sshd is missing (Debian package openssh-server)"
command -v nix-store >/dev/null || die "nix-store is missing (Debian package nix-bin)"

MACHINE=4c4c4544004d3510804fb4c04f4d3732
AGENT=$BIN/nixprov-agent

# --- the builder: OpenSSH's sshd on 127.0.0.1 --------------------------------------------------
mkdir -p ssh root/etc/nixprov data/machines
echo "$MACHINE" > root/etc/machine-id
ssh-keygen -q -t ed25519 -N '' -C builder-host -f ssh/host_ed25519
ssh-keygen -q -t ed25519 -N '' -C impostor-host -f ssh/impostor_ed25519
ssh-keygen -q -t ed25519 -N '' -C nixprov-test -f root/etc/nixprov/builder_ed25519
ssh-keygen -q -t ed25519 -N '' -C stranger -f ssh/stranger_ed25519
cp root/etc/nixprov/builder_ed25519.pub ssh/authorized_keys
HOST_KEY=$(cut -d' ' -f1,2 ssh/host_ed25519.pub)
SSH_PORT=$(free_port)
mkdir -p /run/sshd
chmod 0755 /run/sshd

SSHD_PID=
# start_sshd HOSTKEY: sshd in the foreground of a background job, logging to ssh/sshd.log.
start_sshd() {
  cat > ssh/sshd_config <<EOF
ListenAddress 127.0.0.1
Port $SSH_PORT
HostKey $TMP/ssh/$1
AuthorizedKeysFile $TMP/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $TMP/ssh/sshd.pid
LogLevel VERBOSE
EOF
  /usr/sbin/sshd -D -e -f "$TMP/ssh/sshd_config" >>ssh/sshd.log 2>&1 &
  SSHD_PID=$!
  local _
  for _ in $(seq 100); do
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' \
      "$SSH_PORT" 2>/dev/null && return 0
    kill -0 "$SSHD_PID" 2>/dev/null || { cat ssh/sshd.log >&2; die "sshd did not start"; }
    sleep 0.05
  done
  die "sshd does not accept connections on port $SSH_PORT"
}
stop_sshd() {
  [ -n "$SSHD_PID" ] || return 0
  kill "$SSHD_PID" 2>/dev/null || true
  wait "$SSHD_PID" 2>/dev/null || true
  SSHD_PID=
}
at_exit 'stop_sshd'
start_sshd host_ed25519
ok "sshd on 127.0.0.1:$SSH_PORT with its own host key and an authorized key for root"

# --- the server and the agent ------------------------------------------------------------------
approve_machines "$MACHINE"
start_server "$TMP/data"
cat > nixos-rebuild <<'EOF'
#!/bin/sh
echo "building the system configuration... (stand-in: nothing to build)"
EOF
chmod +x nixos-rebuild
cat > agent.yaml <<EOF
server:
  urls: [$SERVER_URL]
  deadline: 20
  connect-timeout: 2
trusted-keys: [$(tail -n 1 "$KEYS/fleet.pub")]
rebuild:
  command: $TMP/nixos-rebuild
  path: /usr/bin:/bin
enroll: {wait: 0}
EOF

BUILDER_URI=ssh://root@127.0.0.1:$SSH_PORT
publish() { # publish SERIAL REQUIRED FALLBACK-LOCAL
  cat > "data/machines/$MACHINE.yaml" <<EOF
nixprov: 1
serial: $1
expires: 2099-01-01T00:00:00Z
machines: [$MACHINE]
strategy: remote-builders
nix:
  fallback-local: $3
  settings:
    substituters: []
    max-jobs: fit
builders:
  - uri: $BUILDER_URI
    systems: [x86_64-linux]
    max-jobs: 2
    host-key: $HOST_KEY
    identity: /etc/nixprov/builder_ed25519
    required: $2
rebuild:
  timeout: 60
report:
  interval: 1
EOF
  minisign -S -s "$KEYS/fleet.sec" -m "data/machines/$MACHINE.yaml" -t "serial $1" >/dev/null
}
agent_run() { timeout 120 "$AGENT" run --config agent.yaml --root root --cmdline - "$@"; }
probe() { timeout 60 "$AGENT" builders --config agent.yaml --root root --cmdline - "$@"; }
history() { operator_curl "/v1/machines/$MACHINE" -f > history.json; }
builders_report() { history; jq -c '[.reports[] | select(.phase == "builders")] | last' history.json; }
MACHINES_FILE=root/etc/nix/nixprov-machines
SSH_CONFIG=root/etc/nixprov/ssh_config
# alias URI [INDEX]: the URI as the machines file names it: sshd listens on a port other than 22,
# so the builder goes through the Host alias nixprov-builder-INDEX of the written ssh_config.
alias() { sed -E "s|@127\.0\.0\.1:[0-9]+|@nixprov-builder-${2:-0}|" <<<"$1"; }

# --- a full run: the builders phase probes the builder, the machines file names it -------------
publish 1 true false
expect_exit first-run 0 agent_run
expect_grep first-run "provisioned at serial 1"
expect_grep first-run "1 of 1 builder answers: building remotely only (max-jobs = 0)"
grep -q "^max-jobs = 0$" root/etc/nix/nixprov.conf || die "a builder answers: max-jobs is not 0"
f=$(builders_report)
[ "$(jq -r .status <<<"$f")" = ok ] || die "builders report: $f"
jq -r .message <<<"$f" | grep -q "$BUILDER_URI: ok, [0-9]* ms, nix-store (Nix) " ||
  die "builders report has no state, latency and version: $f"
grep -q "^ssh://root@nixprov-builder-0 x86_64-linux /etc/nixprov/builder_ed25519 2 1 - - $(printf '%s' "$HOST_KEY" | base64 -w0)\$" \
  "$MACHINES_FILE" || { cat "$MACHINES_FILE" >&2; die "the machines file does not name the builder"; }
printf 'Host nixprov-builder-0\n  HostName 127.0.0.1\n  Port %s\n  HostKeyAlias nixprov-builder-0\n  IdentityFile /etc/nixprov/builder_ed25519\n' \
  "$SSH_PORT" >ssh-config.expected
tail -n +3 "$SSH_CONFIG" | diff -u ssh-config.expected - >&2 || die "the ssh_config's Host alias"
[ "$(stat -c %a "$SSH_CONFIG")" = 644 ] || die "ssh_config is not 0644"
[ "$(stat -c %a root/var/lib/nixprov/profile.yaml)" = 600 ] || die "the applied profile was not kept 0600"
cmp -s root/var/lib/nixprov/profile.yaml "data/machines/$MACHINE.yaml" || die "the kept profile differs"
ok "run: the builders report says '$(jq -r .message <<<"$f" | cut -c1-120)'; the machines file names the builder's Host alias, ssh_config (0644) defines it"

# --- nixprov-agent builders: the applied profile's builders, on demand -------------------------
expect_exit probe-ok 0 probe
expect_grep probe-ok "$BUILDER_URI: ok, "
expect_grep probe-ok "nix-store (Nix) 2."
expect_exit probe-json 0 probe --json
jq -e --arg uri "$BUILDER_URI" '.required_ok == true and (.builders | length) == 1 and
    .builders[0].uri == $uri and .builders[0].state == "ok" and
    (.builders[0].nix_version | startswith("nix-store (Nix) ")) and .builders[0].latency_ms >= 0' \
  probe-json.out >/dev/null || die "builders --json: $(cat probe-json.out)"
LATENCY=$(jq .builders[0].latency_ms probe-json.out)
ok "builders: ok, $(jq -r .builders[0].nix_version probe-json.out), $LATENCY ms (text and --json)"

# The kept profile is verified again: a tampered one is refused.
cp root/var/lib/nixprov/profile.yaml profile.keep
sed -i 's/max-jobs: 2/max-jobs: 3/' root/var/lib/nixprov/profile.yaml
expect_exit probe-tampered 4 probe
cp profile.keep root/var/lib/nixprov/profile.yaml
ok "builders: a tampered applied profile is refused (exit 4)"

# --- a different host key: refused as a mismatch, before any authentication --------------------
stop_sshd
log_before=$(wc -l < ssh/sshd.log)
start_sshd impostor_ed25519
expect_exit probe-mismatch 6 probe --json
jq -e '.builders[0].state == "host-key-mismatch" and .required_ok == false and
    (.builders[0].error | contains("possible man-in-the-middle"))' probe-mismatch.out >/dev/null ||
  die "mismatch: $(cat probe-mismatch.out)"
tail -n +"$((log_before + 1))" ssh/sshd.log > mismatch-sshd.log
grep -q "Connection from 127.0.0.1" mismatch-sshd.log || die "sshd saw no connection: $(cat mismatch-sshd.log)"
if grep -Eqi "publickey|Accepted|Failed|userauth" mismatch-sshd.log; then
  cat mismatch-sshd.log >&2
  die "an authentication was attempted against a server with another host key"
fi
ok "a different host key: host-key-mismatch (exit 6), and sshd's log shows no authentication attempt"

# The same in a run: a required builder with another host key stops it (exit 6), nothing written.
publish 2 true true
touch stamp
sleep 0.01
expect_exit run-mismatch 6 agent_run
expect_grep run-mismatch "possible attack"
changed=$(cd root && find . -type f -newer "$TMP/stamp" | grep -v '^./var/lib/nixprov/' || true)
[ -z "$changed" ] || die "mismatch: files written: $changed"
f=$(builders_report)
[ "$(jq -r .status <<<"$f")" = failed ] && jq -r .error <<<"$f" | grep -q "host-key-mismatch" ||
  die "mismatch report: $f"
ok "run: a required builder with another host key fails the builders phase (exit 6), nothing written"
stop_sshd

# --- sshd stopped: unreachable, within the deadline --------------------------------------------
start=$(date +%s%N)
expect_exit probe-down 6 probe --json --deadline 3
ms=$(( ($(date +%s%N) - start) / 1000000 ))
jq -e '.builders[0].state == "unreachable"' probe-down.out >/dev/null || die "down: $(cat probe-down.out)"
[ "$ms" -le 5000 ] || die "unreachable took $ms ms with a 3 s deadline"
UNREACHABLE_MS=$ms
ok "sshd stopped: unreachable in $ms ms (deadline 3 s)"

# A port that accepts connections and never speaks SSH: timeout, within the deadline.
python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8); open("silent.ready", "w").close(); time.sleep(60)' "$SSH_PORT" &
SILENT=$!
at_exit "kill $SILENT 2>/dev/null"
wait_for_file silent.ready
start=$(date +%s%N)
expect_exit probe-silent 6 probe --json --deadline 2
ms=$(( ($(date +%s%N) - start) / 1000000 ))
kill $SILENT 2>/dev/null; wait $SILENT 2>/dev/null || true
jq -e '.builders[0].state == "timeout"' probe-silent.out >/dev/null || die "silent: $(cat probe-silent.out)"
[ "$ms" -le 4000 ] || die "a silent port took $ms ms with a 2 s deadline"
SILENT_MS=$ms
ok "a port that never answers: timeout in $ms ms (deadline 2 s)"

# --- a run with the builder down -----------------------------------------------------------------
# required, no fallback: exit 6, nothing written.
publish 3 true false
touch stamp
sleep 0.01
expect_exit run-down 6 agent_run
expect_grep run-down "no builder answers"
changed=$(cd root && find . -type f -newer "$TMP/stamp" | grep -v '^./var/lib/nixprov/' || true)
[ -z "$changed" ] || die "builder down: files written: $changed"
grep -q '^serial 1$' root/var/lib/nixprov/applied || die "the applied serial changed"
f=$(builders_report)
jq -r .error <<<"$f" | grep -q "$BUILDER_URI: unreachable" || die "builder down report: $f"
ok "run: the only builder down, required, no fallback: exit 6, nothing written, reported unreachable"

# required, fallback-local: builds locally and says so; the builder is left out of the file.
publish 4 true true
expect_exit run-fallback 0 agent_run
expect_grep run-fallback "0 of 1 builder answers: none answers: building locally (nix.fallback-local: true, max-jobs = "
grep -q "^max-jobs = [1-9][0-9]*$" root/etc/nix/nixprov.conf ||
  die "fallback: max-jobs is not fit's number: $(grep max-jobs root/etc/nix/nixprov.conf)"
[ ! -s "$MACHINES_FILE" ] || { cat "$MACHINES_FILE" >&2; die "a builder that did not answer was written"; }
ok "run: builder down, fallback-local: true: provisioned, building locally, builder left out"

# not required: kept in the file.
publish 5 false true
expect_exit run-optional 0 agent_run
expect_grep run-optional "(kept: not required)"
grep -q "^$(alias "$BUILDER_URI") " "$MACHINES_FILE" || die "a builder that is not required was left out"
ok "run: a builder that is not required is kept in the machines file though it is down"

# A port that no ssh configuration can name (99999): refused in the write phase, nothing written.
cp -a root/etc etc.before
KEEP_URI=$BUILDER_URI
BUILDER_URI=ssh://root@127.0.0.1:99999
publish 6 false true
expect_exit run-badport 5 agent_run
expect_grep run-badport "failed to render the Nix files: Invalid argument"
diff -r etc.before root/etc >&2 || die "a bad port changed files under /etc"
BUILDER_URI=$KEEP_URI
ok "run: a builder on port 99999 (kept: not required) fails the write phase (exit 5), nothing written"

# --- a wrong identity: auth-failed -------------------------------------------------------------
start_sshd host_ed25519
publish 6 true false
expect_exit run-back 0 agent_run
cp root/etc/nixprov/builder_ed25519 builder.keep
cp ssh/stranger_ed25519 root/etc/nixprov/builder_ed25519
expect_exit probe-auth 6 probe --json
jq -e '.builders[0].state == "auth-failed"' probe-auth.out >/dev/null || die "auth: $(cat probe-auth.out)"
rm root/etc/nixprov/builder_ed25519
expect_exit probe-noid 6 probe --json
jq -e '.builders[0].state == "auth-failed" and (.builders[0].error | contains("cannot be read"))' \
  probe-noid.out >/dev/null || die "no identity: $(cat probe-noid.out)"
cp builder.keep root/etc/nixprov/builder_ed25519
ok "a key the builder does not know, or none at all: auth-failed"

# --- a real remote build on the sshd builder ---------------------------------------------------
# The builder runs Nix in its own store (local?root=...): a build over SSH to 127.0.0.1 in the
# same store deadlocks on the store's locks. Its nix-store is a wrapper (the URI's
# remote-program) that sets this host's Nix up: no nixbld users, no substituters, and the host's
# /bin and /usr for the sandbox a diverted store always builds in.
cat > ssh/nix-store-builder <<EOF
#!/bin/sh
export NIX_CONFIG="build-users-group =
sandbox = false
substituters =
sandbox-paths = /bin=/usr/bin /lib=/usr/lib /lib64=/usr/lib64 /usr"
exec nix-store --store 'local?root=$TMP/builder-store' "\$@"
EOF
chmod +x ssh/nix-store-builder
# The identity path is the same on the device (under --root) and on this host, for Nix.
mkdir -p "root$TMP/key" "$TMP/key"
cp root/etc/nixprov/builder_ed25519 "root$TMP/key/id"
cp root/etc/nixprov/builder_ed25519 "$TMP/key/id"
BUILDER_URI="ssh://root@127.0.0.1:$SSH_PORT?remote-program=$TMP/ssh/nix-store-builder"
RUN_ID=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
publish 7 true false
# The profile says max-jobs: fit; the device builds nothing itself because the builder answers
# (the offloading policy, not a max-jobs: 0 in the profile).
sed -i "s|identity: /etc/nixprov/builder_ed25519|identity: $TMP/key/id|" "data/machines/$MACHINE.yaml"
grep -q "max-jobs: fit" "data/machines/$MACHINE.yaml" || die "the profile lost its max-jobs: fit"
minisign -S -s "$KEYS/fleet.sec" -m "data/machines/$MACHINE.yaml" -t "serial 7" >/dev/null
# Nix 2.8 takes no port in an ssh:// URI (it hands "host:port" to ssh as a host name): the
# machines file names the Host alias. Under --root the agent gives the rebuild the builders
# inline (their identity files under the root) and NIX_SSHOPTS="-F
# ROOT/var/lib/nixprov/first-build-ssh_config", a copy of the ssh_config with the identity files
# under the root. The stand-in keeps the environment it got, for the checks below.
cat > nixos-rebuild <<EOF
#!/bin/sh
env > $TMP/rebuild-env
cp "\${NIX_SSHOPTS#-F }" $TMP/rebuild-ssh_config
exec timeout 120 $SRC/tests/integration/rebuild-standin.sh $SRC/tests/data/nix/closure.nix rb-$RUN_ID
EOF
expect_exit remote-build 0 agent_run
expect_grep remote-build "provisioned at serial 7"
expect_grep remote-build "1 of 1 builder answers: building remotely only (max-jobs = 0)"
history
f=$(jq -c '[.reports[] | select(.phase == "done")] | last' history.json)
[ "$(jq -r .counts.built_remote <<<"$f")" = 3 ] || die "built remotely: $f"
[ "$(jq -r .counts.built <<<"$f")" = 0 ] || die "built locally: $f"
grep -qF "on 'ssh://root@nixprov-builder-0?remote-program=$TMP/ssh/nix-store-builder'" root/var/log/nixprov/rebuild-7-*.log ||
  die "the rebuild log does not name the builder's alias"
grep -qx "NIX_SSHOPTS=-F $TMP/root/var/lib/nixprov/first-build-ssh_config" rebuild-env ||
  die "the rebuild's NIX_SSHOPTS: $(grep NIX_SSHOPTS rebuild-env)"
grep -q "^builders = ssh://root@nixprov-builder-0?remote-program=$TMP/ssh/nix-store-builder x86_64-linux $TMP/root$TMP/key/id " rebuild-env ||
  die "the rebuild's builders: $(grep builders rebuild-env)"
grep -qxF "  IdentityFile $TMP/root$TMP/key/id" rebuild-ssh_config ||
  die "the rebuild's ssh config: $(cat rebuild-ssh_config)"
! grep -q "@/etc/nix/nixprov-machines" rebuild-env || die "the rebuild is given the unrooted machines file"
ls "$TMP/builder-store/nix/store/" | grep -q "nixprov-demo-c" || die "the builder's store has no output"
grep -q "^max-jobs = 0$" root/etc/nix/nixprov.conf || die "max-jobs is not 0"
ok "a real remote build on port $SSH_PORT with Nix $(nix-store --version | cut -d' ' -f3), through the Host alias: 3 derivations built on the sshd builder in its own store, 0 locally"

# The pinned key is looked up under the alias (HostKeyAlias), as in the known_hosts file Nix
# writes from the machines file ("nixprov-builder-0 KEY"): a key pinned under the address is not it.
echo "nixprov-builder-0 $HOST_KEY" >kh-alias
echo "[127.0.0.1]:$SSH_PORT $HOST_KEY" >kh-address
for kh in alias address; do
  run "ssh-$kh" timeout 20 ssh -F "$TMP/root/etc/nixprov/ssh_config" -o BatchMode=yes \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$TMP/kh-$kh" -o GlobalKnownHostsFile=/dev/null \
    -i "$TMP/key/id" root@nixprov-builder-0 echo pinned-ok
done
grep -qx pinned-ok ssh-alias.out || { cat ssh-alias.out >&2; die "ssh through the alias with the key pinned under it"; }
expect_grep ssh-address "Host key verification failed"
ok "ssh through the alias checks the key pinned under the alias name, not under the address"

# --- a builder without Nix: nix-missing ----------------------------------------------------------
BUILDER_URI="ssh://root@127.0.0.1:$SSH_PORT?remote-program=/nonexistent/nix-store"
publish 8 true true
expect_exit run-nonix 0 agent_run
f=$(builders_report)
jq -r .message <<<"$f" | grep -q "$BUILDER_URI: nix-missing: /nonexistent/nix-store --version exited with status 127 (command not found)" ||
  die "nix-missing report: $f"
ok "a builder where the remote Nix is missing: nix-missing, exit status 127"

# --- two builders are probed at once -----------------------------------------------------------
PORT_B=$(free_port)
URI_A="ssh://root@127.0.0.1:$SSH_PORT"
URI_B="ssh://root@127.0.0.1:$PORT_B"
cat > "data/machines/$MACHINE.yaml" <<EOF
nixprov: 1
serial: 9
expires: 2099-01-01T00:00:00Z
machines: [$MACHINE]
strategy: remote-builders
nix:
  settings:
    substituters: []
builders:
  - uri: $URI_A
    systems: [x86_64-linux]
    host-key: $HOST_KEY
    identity: /etc/nixprov/builder_ed25519
  - uri: $URI_B
    systems: [x86_64-linux]
    host-key: $HOST_KEY
    identity: /etc/nixprov/builder_ed25519
    required: false
rebuild:
  timeout: 60
EOF
minisign -S -s "$KEYS/fleet.sec" -m "data/machines/$MACHINE.yaml" -t "serial 9" >/dev/null
cat > nixos-rebuild <<'EOF'
#!/bin/sh
echo "building the system configuration... (stand-in: nothing to build)"
EOF
expect_exit run-two 0 agent_run
expect_grep run-two "1 of 2 builders answer"
expect_grep run-two "$URI_B: unreachable: Connection refused (kept: not required)"
grep -q "^$(alias "$URI_A" 0) " "$MACHINES_FILE" && grep -q "^$(alias "$URI_B" 1) " "$MACHINES_FILE" ||
  die "the machines file does not have both builders: $(cat "$MACHINES_FILE")"
expect_exit probe-two 0 probe --json
jq -e '.required_ok and .builders[0].state == "ok" and .builders[1].state == "unreachable"' \
  probe-two.out >/dev/null || die "two builders: $(cat probe-two.out)"
# Both ports silent: two timeouts in about one deadline, not two.
stop_sshd
python3 -c '
import socket, sys, time
ss = []
for p in sys.argv[1:]:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(p))); s.listen(8); ss.append(s)
open("silent-two.ready", "w").close()
time.sleep(60)' "$SSH_PORT" "$PORT_B" &
SILENT=$!
at_exit "kill $SILENT 2>/dev/null"
wait_for_file silent-two.ready
start=$(date +%s%N)
expect_exit probe-two-silent 6 probe --json --deadline 2
ms=$(( ($(date +%s%N) - start) / 1000000 ))
kill $SILENT 2>/dev/null; wait $SILENT 2>/dev/null || true
jq -e '.builders[0].state == "timeout" and .builders[1].state == "timeout"' probe-two-silent.out \
  >/dev/null || die "two silent: $(cat probe-two-silent.out)"
[ "$ms" -le 3500 ] || die "two silent builders took $ms ms with a 2 s deadline each: not in parallel"
ok "two builders probed in parallel: both silent, both timeout in $ms ms (deadline 2 s each)"

# --- no identity in the profile: root's default key, as ssh would for Nix ----------------------
start_sshd host_ed25519
BUILDER_URI="ssh://root@127.0.0.1:$SSH_PORT"
publish 10 true false
sed -i '/identity:/d' "data/machines/$MACHINE.yaml"
minisign -S -s "$KEYS/fleet.sec" -m "data/machines/$MACHINE.yaml" -t "serial 10" >/dev/null
expect_exit run-nokey 6 agent_run
expect_grep run-nokey "auth-failed: no identity in the profile, and root has no default key"
mkdir -p root/root/.ssh
cp root/etc/nixprov/builder_ed25519 root/root/.ssh/id_ed25519
expect_exit run-defaultkey 0 agent_run
expect_grep run-defaultkey "1 of 1 builder answers"
grep -q "^$(alias "$BUILDER_URI") x86_64-linux - " "$MACHINES_FILE" || die "machines file: $(cat "$MACHINES_FILE")"
ok "no identity in the profile: root's default key logs in (none there: auth-failed, exit 6)"

# --- nix.local-builds: true: the device builds too, while the builder answers ------------------
publish 11 true false
sed -i '/identity:/d; s|^nix:$|nix:\n  local-builds: true|' "data/machines/$MACHINE.yaml"
minisign -S -s "$KEYS/fleet.sec" -m "data/machines/$MACHINE.yaml" -t "serial 11" >/dev/null
expect_exit run-local 0 agent_run
expect_grep run-local "1 of 1 builder answers: building remotely and locally (nix.local-builds: true, max-jobs = "
grep -q "^max-jobs = [1-9][0-9]*$" root/etc/nix/nixprov.conf ||
  die "local-builds: max-jobs is not fit's number: $(grep max-jobs root/etc/nix/nixprov.conf)"
grep -q "^$(alias "$BUILDER_URI") " "$MACHINES_FILE" || die "local-builds: the builder is not in the machines file"
ok "nix.local-builds: true: remotely and locally, $(grep '^max-jobs' root/etc/nix/nixprov.conf)"

# --- a sealed identity: opened in plan, used by the probe from memory, then written 0600 ---------
# A key of its own, known to the builder, that exists on the device only sealed in the profile.
ssh-keygen -q -t ed25519 -N '' -C sealed-identity -f ssh/sealed_ed25519
cat ssh/sealed_ed25519.pub >> ssh/authorized_keys
rm -f root/root/.ssh/id_ed25519
BOX_PUB=root/var/lib/nixprov/device-box.pub
[ -s "$BOX_PUB" ] || die "the device has no box key yet"
seal() { "$BIN/nixprov" seal --to "$BOX_PUB" --file "$1" | sed -n 's/^{sealed: \(.*\)}$/\1/p'; }
publish_sealed() { # publish_sealed SERIAL SEALED
  publish "$1" true false
  sed -i "s|identity: /etc/nixprov/builder_ed25519|identity: {sealed: $2}|" "data/machines/$MACHINE.yaml"
  grep -q "identity: {sealed: " "data/machines/$MACHINE.yaml" || die "no sealed identity in the profile"
  minisign -S -s "$KEYS/fleet.sec" -m "data/machines/$MACHINE.yaml" -t "serial $1" >/dev/null
}
SEALED_KEY_FILE=root/etc/nix/nixprov-builder-0.key

# Refusals first: sealed text that is no private key, and a key the builder does not know.
printf 'not a private key\n' > not-a-key.txt
publish_sealed 12 "$(seal not-a-key.txt)"
expect_exit run-sealed-junk 6 agent_run
expect_grep run-sealed-junk "$BUILDER_URI: auth-failed: the identity builders[0].identity (sealed) is not a private key libssh can read (OpenSSH or PEM, without a passphrase) (left out)"
[ ! -e "$SEALED_KEY_FILE" ] || die "a sealed identity was written though the run failed"
publish_sealed 13 "$(seal ssh/stranger_ed25519)"
expect_exit run-sealed-stranger 6 agent_run
expect_grep run-sealed-stranger "$BUILDER_URI: auth-failed: user root was not let in with the identity builders[0].identity (sealed) (left out)"
[ ! -e "$SEALED_KEY_FILE" ] || die "a sealed identity was written though the run failed"
ok "a sealed identity that is no key, or that the builder does not know: auth-failed (exit 6), no key file written"

publish_sealed 14 "$(seal ssh/sealed_ed25519)"
log_before=$(wc -l < ssh/sshd.log)
expect_exit run-sealed 0 agent_run
expect_grep run-sealed "provisioned at serial 14"
expect_grep run-sealed "1 of 1 builder answers: building remotely only (max-jobs = 0); $BUILDER_URI: ok, "
tail -n +"$((log_before + 1))" ssh/sshd.log | grep -q "Accepted publickey for root .* ED25519 SHA256:$(ssh-keygen -lf ssh/sealed_ed25519.pub | cut -d' ' -f2 | cut -d: -f2)" ||
  die "sshd did not let the sealed key in: $(tail -n +"$((log_before + 1))" ssh/sshd.log)"
[ "$(stat -c '%a %u' "$SEALED_KEY_FILE")" = "600 0" ] || die "the key file is $(stat -c '%a %u' "$SEALED_KEY_FILE")"
cmp -s "$SEALED_KEY_FILE" ssh/sealed_ed25519 || die "the written key differs from the sealed one"
grep -q "^$(alias "$BUILDER_URI") x86_64-linux /etc/nix/nixprov-builder-0.key 2 1 - - " "$MACHINES_FILE" ||
  die "the machines file does not name the written key: $(cat "$MACHINES_FILE")"
# nixprov-agent builders logs in with the written file, as Nix will.
expect_exit probe-sealed 0 probe
expect_grep probe-sealed "$BUILDER_URI: ok, "
# The key's text (each full line of its body after the first, which every OpenSSH ed25519 key
# shares) is in no other file: not in the root, the logs, the
# reports, the server's database and log, nor in what the programs printed.
sed '1,2d;$d' ssh/sealed_ed25519 | awk 'length >= 64' > key-lines
[ "$(wc -l < key-lines)" -ge 3 ] || die "the key has too few lines to look for: $(wc -l < key-lines)"
grep -qaF -f key-lines "$SEALED_KEY_FILE" || die "the leak check would not see the key"
leaks=$(
  { find root -type f ! -path "$SEALED_KEY_FILE" -print0
    printf '%s\0' ./*.out history.json "$TMP/server.log" ssh/sshd.log data/nixprov.db*
  } | xargs -0 grep -laF -f key-lines 2>/dev/null || true)
[ -z "$leaks" ] || die "the sealed key's text leaked into: $leaks"
ok "a sealed identity: the probe logs in with it from memory (sshd: Accepted publickey), written 0600 only after, named in the machines file; its text is nowhere else"

# A later profile whose builder logs in with a key on the device: the sealed key file goes, and
# no copy of it stays.
publish 15 true false
expect_exit run-unsealed 0 agent_run
expect_grep run-unsealed "removed the secret files this profile no longer has"
[ ! -e "$SEALED_KEY_FILE" ] && [ ! -e "$SEALED_KEY_FILE~" ] || die "the dropped sealed key is left"
! grep -rlaF -f key-lines root || die "the dropped key's text is still under the root"
ok "a profile without the sealed identity: its key file is removed, no copy kept"

echo "probe latency ${LATENCY} ms; unreachable in ${UNREACHABLE_MS} ms; silent port in ${SILENT_MS} ms"
echo "$checks passed, 0 failed"
