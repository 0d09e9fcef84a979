#!/usr/bin/env bash
# Secrets end to end, with real processes: the device's keys (nixprov-agent id), a Cachix token
# sealed to the device (nixprov seal), a signed profile carrying it, served by nixprov serve;
# nixprov-agent run opens it and writes the 0600 netrc, secrets include and cachix.dhall; the
# first build (real Nix through the rebuild stand-in) substitutes from a binary cache on
# 127.0.0.1 that answers 401 without the token. The plaintext token is then looked for
# everywhere else: files under the root, logs, the server's database and reports, and the
# command lines and environments of the rebuild's processes. Values sealed to another device or
# changed are refused.
source "$(dirname "$0")/lib.sh"
command -v nix-build >/dev/null || die "nix-build is missing (Debian package nix-bin)"

MACHINE=4c4c4544004d3510804fb4c04f4d3732
run_id=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
NONCE=sec-$run_id
AGENT=$BIN/nixprov-agent
NIXPROV=$BIN/nixprov
# A token shaped like Cachix's (a JWT), unique to this run so a search for it finds only it.
TOKEN=eyJhbGciOiJIUzI1NiJ9.nixprov-test-$run_id.$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$TOKEN" > token.txt
chmod 600 token.txt

# --- a binary cache on 127.0.0.1 that requires the token ---------------------------------------
make_cache "$NONCE"
rm -f auth.port
python3 "$SRC/tests/integration/auth-cache.py" auth.port "$CACHE_DIR" token.txt auth.log 2>auth.err &
at_exit "kill $! 2>/dev/null; wait $! 2>/dev/null"
for _ in $(seq 50); do [ -s auth.port ] && break; sleep 0.1; done
[ -s auth.port ] || { cat auth.err >&2; die "the authenticating cache did not start"; }
CACHE_URL=http://127.0.0.1:$(cat auth.port)
code() { curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "$@"; }
[ "$(code "$CACHE_URL/nix-cache-info")" = 401 ] || die "the cache answers without credentials"
[ "$(code -u ":wrong-$run_id" "$CACHE_URL/nix-cache-info")" = 401 ] ||
  die "the cache answers a wrong token"
printf 'machine 127.0.0.1 password %s\n' "$TOKEN" > curl.netrc
[ "$(code --netrc-file curl.netrc "$CACHE_URL/nix-cache-info")" = 200 ] ||
  die "the cache refuses the token"
rm curl.netrc
ok "binary cache with ${#CLOSURE_PATHS[@]} paths at $CACHE_URL: 401 without the token or with a wrong one, 200 with it"

# Nix itself, without a netrc, cannot substitute from it.
out=$(NIX_CONFIG="$HOST_NIX
substituters = $CACHE_URL
trusted-public-keys = $CACHE_PUB" timeout 120 nix-build --no-out-link "$CLOSURE" --argstr nonce "$NONCE" \
  --max-jobs 0 2>&1) && die "nix-build substituted without credentials: $out"
for p in "${CLOSURE_PATHS[@]}"; do [ ! -e "$p" ] || die "$p was substituted without credentials"; done
grep -q "auth=none 401" auth.log || die "the cache saw no unauthenticated request"
ok "without the netrc, Nix gets 401 and cannot substitute anything (max-jobs 0: no local build either)"

# --- the device's keys --------------------------------------------------------------------------
mkdir -p data/machines root/etc
echo "$MACHINE" > root/etc/machine-id
approve_machines "$MACHINE"
start_server "$TMP/data"
cat > nixos-rebuild <<END_REBUILD
#!/bin/sh
# Leaves a copy of what a process of the rebuild can be seen with, for the search below.
tr '\0' '\n' < /proc/self/cmdline > $TMP/rebuild.cmdline
tr '\0' '\n' < /proc/self/environ > $TMP/rebuild.environ
printf '%s\n' "\$NIX_CONFIG" > $TMP/rebuild.nix-config
sleep 1 # long enough for the test's scan of /proc to see this process and its child
exec $SRC/tests/integration/rebuild-standin.sh $CLOSURE $NONCE
END_REBUILD
chmod +x nixos-rebuild
cat > agent.yaml <<END_CONFIG
server:
  urls: [$SERVER_URL]
  deadline: 20
  connect-timeout: 2
trusted-keys: [$(tail -n 1 "$KEYS/fleet.pub")]
rebuild:
  command: $TMP/nixos-rebuild
  path: /usr/bin:/bin
enroll: {wait: 0}
END_CONFIG
agent() { timeout 300 "$AGENT" "$@"; }

expect_exit id 0 agent id --json --config agent.yaml --root root
BOX=$(jq -r .box_public_key id.out)
SIGN=$(jq -r .sign_public_key id.out)
[ "$(jq -r .machine_id id.out)" = "$MACHINE" ] || die "id: $(cat id.out)"
[ "$(printf '%s' "$BOX" | base64 -d | wc -c)" = 32 ] || die "box key: $BOX"
[ "$(printf '%s' "$SIGN" | base64 -d | wc -c)" = 32 ] || die "sign key: $SIGN"
S=root/var/lib/nixprov
for f in device-sign.key device-box.key; do [ "$(stat -c %a "$S/$f")" = 600 ] || die "$f mode"; done
for f in device-sign.pub device-box.pub; do [ "$(stat -c %a "$S/$f")" = 644 ] || die "$f mode"; done
[ "$(stat -c %a "$S")" = 700 ] || die "state dir mode"
before=$(stat -c '%i %Y' "$S/device-sign.key" "$S/device-box.key")
sleep 1
expect_exit id-again 0 agent id --config agent.yaml --root root
expect_grep id-again "box-key:    $BOX"
expect_grep id-again "sign-key:   $SIGN"
[ "$(stat -c '%i %Y' "$S/device-sign.key" "$S/device-box.key")" = "$before" ] ||
  die "nixprov-agent id replaced a secret key"
ok "nixprov-agent id: keys made once (secret 0600, public 0644, state dir 0700), then the same keys, never replaced"

# --- seal the token; sign a profile carrying it ------------------------------------------------
expect_exit seal 0 "$NIXPROV" seal --to "$BOX" < token.txt
SEALED=$(sed -n 's/^{sealed: \(.*\)}$/\1/p' seal.out)
[ -n "$SEALED" ] || die "seal printed: $(cat seal.out)"
grep -qF "$TOKEN" seal.out && die "seal printed the token"
expect_exit seal-file 0 "$NIXPROV" seal --to "$S/device-box.pub" --file token.txt
expect_exit seal-argv 2 "$NIXPROV" seal --to "$BOX" "$TOKEN"
expect_grep seal-argv "never from the command line"
ok "nixprov seal: from stdin or --file, to the key or its .pub file; a secret in argv is refused"

# A public key of the right shape for the cache entry (a private cache on cachix.org would have
# its own); the cache on 127.0.0.1 is trusted through its own key in nix.settings.
CACHIX_KEY=private.cachix.org-1:$(head -c 32 /dev/urandom | base64)

publish() { # publish SERIAL SEALED-BASE64
  cat > "data/machines/$MACHINE.yaml" <<END_PROFILE
nixprov: 1
serial: $1
expires: 2099-01-01T00:00:00Z
machines: [$MACHINE]
strategy: source
nix:
  settings:
    substituters: [$CACHE_URL]
    trusted-public-keys: [$CACHE_PUB]
    max-jobs: 0
cachix:
  - name: private
    public-key: $CACHIX_KEY
    auth-token: {sealed: $2}
    host: 127.0.0.1
rebuild:
  timeout: 120
report:
  interval: 1
END_PROFILE
  minisign -S -s "$KEYS/fleet.sec" -m "data/machines/$MACHINE.yaml" -t "serial $1" >/dev/null
}
run_agent() { agent run --config agent.yaml --root root --cmdline - "$@"; }
secret_files=(etc/nix/nixprov-netrc etc/nix/nixprov-secrets.conf root/.config/cachix/cachix.dhall)
nothing_written() {
  local f
  for f in "${secret_files[@]}" etc/nix/nixprov.conf etc/nixos/nixprov/default.nix; do
    [ ! -e "root/$f" ] || die "$1: root/$f was written"
  done
  [ ! -e root/var/lib/nixprov/applied ] || die "$1: a serial was recorded"
}

# --- refusals first: sealed to another device, and changed -------------------------------------
mkdir -p other/etc && echo 0123456789abcdef0123456789abcdef > other/etc/machine-id
OTHER=$(agent id --json --config agent.yaml --root other | jq -r .box_public_key)
publish 1 "$(printf '%s\n' "$TOKEN" | "$NIXPROV" seal --to "$OTHER" | sed -n 's/^{sealed: \(.*\)}$/\1/p')"
expect_exit other-device 4 run_agent
expect_grep other-device "plan failed: cachix[0].auth-token: cannot be opened with this device's box key: sealed to another device, or changed"
nothing_written other-device

TAMPERED=$(python3 -c '
import base64, sys
box = bytearray(base64.b64decode(sys.argv[1]))
box[len(box) // 2] ^= 0x01
print(base64.b64encode(bytes(box)).decode())' "$SEALED")
[ "$TAMPERED" != "$SEALED" ] || die "tampering changed nothing"
publish 1 "$TAMPERED"
expect_exit tampered 4 run_agent
expect_grep tampered "plan failed: cachix[0].auth-token: cannot be opened with this device's box key: sealed to another device, or changed"
nothing_written tampered
ok "a token sealed to another device, and a changed sealed value: exit 4 naming cachix[0].auth-token, nothing written"

# --- provisioning: the netrc opens the private cache to the first build -------------------------
publish 1 "$SEALED"
# While the agent runs, every process whose environment names the netrc (the rebuild and its
# children: NIX_CONFIG's netrc-file line) has its command line and environment copied.
scan_procs() {
  local f pid
  while [ ! -e "$TMP/agent.done" ]; do
    for f in $(grep -laF "nixprov-netrc" /proc/[0-9]*/environ 2>/dev/null); do
      pid=${f#/proc/}
      pid=${pid%/environ}
      [ "$pid" = "$BASHPID" ] && continue
      tr '\0' '\n' < "/proc/$pid/cmdline" > "$TMP/procs/$pid.cmdline" 2>/dev/null || true
      tr '\0' '\n' < "/proc/$pid/environ" > "$TMP/procs/$pid.environ" 2>/dev/null || true
    done
    sleep 0.02
  done
}
mkdir -p procs
rm -f agent.done
scan_procs &
scanner=$!
at_exit "touch $TMP/agent.done; wait $scanner 2>/dev/null"
expect_exit provision 0 run_agent
touch agent.done
wait $scanner || true
expect_grep provision "provisioned at serial 1"
for p in "${CLOSURE_PATHS[@]}"; do [ -e "$p" ] || die "$p was not substituted"; done
operator_curl "/v1/machines/$MACHINE" -f > history.json
f=$(jq -c '[.reports[] | select(.phase == "done")] | last' history.json)
[ "$(jq -r .counts.substituted <<<"$f")" = 3 ] || die "substituted: $f"
[ "$(jq -r .counts.built <<<"$f")" = 0 ] || die "built: $f"
grep -q "GET /nix-cache-info auth=basic ok" auth.log || die "Nix never authenticated: $(cat auth.log)"
grep -qE "GET /[a-z0-9]{32}\.narinfo auth=basic ok" auth.log || die "no authenticated narinfo"
ok "the first build authenticated with the netrc (HTTP Basic) and substituted 3 paths, built 0"

for f in "${secret_files[@]}"; do
  [ "$(stat -c %a "root/$f")" = 600 ] || die "root/$f mode $(stat -c %a "root/$f")"
done
[ "$(cat root/etc/nix/nixprov-netrc)" = "machine 127.0.0.1 password $TOKEN" ] ||
  die "netrc: $(sed 's/password .*/password .../' root/etc/nix/nixprov-netrc)"
[ "$(cat root/etc/nix/nixprov-secrets.conf)" = "netrc-file = /etc/nix/nixprov-netrc" ] ||
  die "secrets.conf: $(cat root/etc/nix/nixprov-secrets.conf)"
grep -qxF "{ authToken = \"$TOKEN\"" root/root/.config/cachix/cachix.dhall || die "cachix.dhall"
grep -qxF ", binaryCaches = [] : List { name : Text, secretKey : Text }" \
  root/root/.config/cachix/cachix.dhall || die "cachix.dhall format"
grep -qxF "!include /etc/nix/nixprov-secrets.conf" root/etc/nix/nixprov.conf ||
  die "nixprov.conf does not include the secrets"
grep -qxF "netrc-file = $(realpath root)/etc/nix/nixprov-netrc" rebuild.nix-config ||
  die "the first build's NIX_CONFIG has no netrc-file: $(cat rebuild.nix-config)"
ok "netrc, secrets.conf and cachix.dhall are 0600 with the token; NIX_CONFIG names the netrc's path"

# --- the token appears nowhere else -----------------------------------------------------------
n_procs=$(find procs -name '*.environ' | wc -l)
[ "$n_procs" -ge 2 ] || die "only $n_procs processes of the rebuild were seen"
leaks=()
while IFS= read -r -d '' f; do
  case "${f#root/}" in
  etc/nix/nixprov-netrc | etc/nix/nixprov-secrets.conf | root/.config/cachix/cachix.dhall) ;;
  *) if grep -qaF "$TOKEN" "$f"; then leaks+=("$f"); fi ;;
  esac
done < <(find root -type f -print0)
for f in procs/* rebuild.cmdline rebuild.environ rebuild.nix-config provision.out id.out \
  seal.out "$TMP/server.log" history.json root/var/log/nixprov/* data/nixprov.db*; do
  if grep -qaF "$TOKEN" "$f"; then leaks+=("$f"); fi
done
[ "${#leaks[@]}" = 0 ] || die "the token leaked into: ${leaks[*]}"
# Nor its base64 (as an HTTP Basic header carries it).
b64=$(printf ':%s' "$TOKEN" | base64 -w0)
if grep -rqaF "$b64" root procs rebuild.* data; then die "the token's base64 leaked"; fi
ok "the token is in no other file under the root, log, report, server database, nor in the cmdline/environ of $n_procs rebuild processes"

# --- a later run: the same serial, nothing to do; the keys stay -----------------------------------
expect_exit again 0 run_agent
expect_grep again "Nothing new: the server answered 304 Not Modified for serial"
[ "$(stat -c '%i %Y' "$S/device-sign.key" "$S/device-box.key")" = "$before" ] ||
  die "a run replaced a secret key"
ok "a second run has nothing to do and keeps the device keys"

# --- rotation: a new token replaces the old one, which stays nowhere ---------------------------
TOKEN2=eyJhbGciOiJIUzI1NiJ9.nixprov-test-rotated-$run_id.$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$TOKEN2" > token.txt # the cache now takes the new token only
publish 2 "$(printf '%s\n' "$TOKEN2" | "$NIXPROV" seal --to "$BOX" | sed -n 's/^{sealed: \(.*\)}$/\1/p')"
expect_exit rotate 0 run_agent
expect_grep rotate "provisioned at serial 2"
[ "$(cat root/etc/nix/nixprov-netrc)" = "machine 127.0.0.1 password $TOKEN2" ] || die "netrc not rotated"
for f in "${secret_files[@]}"; do [ ! -e "root/$f~" ] || die "root/$f~ (a previous version) is left"; done
! grep -rqaF "$TOKEN" root || die "the old token is still under the root: $(grep -rlaF "$TOKEN" root)"
[ -e root/etc/nix/nixprov.conf~ ] || die "the previous nixprov.conf is no longer kept"
ok "a rotated token: the new one in the 0600 files; the old one nowhere under the root (no FILE~ of a secret file kept)"

# --- a profile without the token: the secret files go, back again if its rebuild fails ------------
publish_plain() { # publish_plain SERIAL
  cat > "data/machines/$MACHINE.yaml" <<END_PROFILE
nixprov: 1
serial: $1
expires: 2099-01-01T00:00:00Z
machines: [$MACHINE]
strategy: source
nix:
  settings:
    substituters: []
rebuild:
  timeout: 60
END_PROFILE
  minisign -S -s "$KEYS/fleet.sec" -m "data/machines/$MACHINE.yaml" -t "serial $1" >/dev/null
}
cp nixos-rebuild nixos-rebuild.good
printf '#!/bin/sh\necho "error: the build failed" >&2\nexit 1\n' > nixos-rebuild
publish_plain 3
expect_exit drop-failed 7 run_agent
for f in "${secret_files[@]}"; do
  [ -e "root/$f" ] && [ "$(stat -c %a "root/$f")" = 600 ] || die "root/$f was not put back after the failed rebuild"
done
[ "$(cat root/etc/nix/nixprov-netrc)" = "machine 127.0.0.1 password $TOKEN2" ] || die "netrc not restored"
ok "a profile dropping the token whose rebuild fails: the secret files are put back as they were (0600)"
printf '#!/bin/sh\nexit 0\n' > nixos-rebuild
# The failed serial is not tried again by itself: the operator retries it.
expect_exit drop 0 run_agent --retry
expect_grep drop "removed the secret files this profile no longer has"
for f in "${secret_files[@]}"; do
  [ ! -e "root/$f" ] && [ ! -e "root/$f~" ] || die "root/$f (or its ~) is left after the token was dropped"
done
! grep -rqaF "$TOKEN2" root || die "the dropped token is still under the root: $(grep -rlaF "$TOKEN2" root)"
ok "a profile without the token: netrc, secrets.conf and cachix.dhall are removed, no copy kept"
cp nixos-rebuild.good nixos-rebuild

echo "$checks passed, 0 failed"
