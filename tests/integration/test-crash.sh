#!/usr/bin/env bash
# The agent killed at every system call of an update: an applied profile (two Cachix caches
# with sealed tokens and a builder with a sealed SSH key) is replaced by one that rotates the
# first token and drops the second cache and the builder. For every system call that changes
# files (openat, write, fchmod, fsync, syncfs, link, rename, unlink, mkdir ...) from the write
# phase to the end of the run, the update is run from the same start under strace, which sends
# SIGKILL at that call, then once normally. After each pair: no temporary file anywhere under the
# root, no torn file (each one is the old or the new version), the update applied, and the
# dropped or rotated secrets nowhere under the root. Before that, the first run checks that
# under --root every path the rebuild command is given (NIX_CONFIG, NIX_SSHOPTS and the files
# they name) is under the root.
source "$(dirname "$0")/lib.sh"
command -v strace >/dev/null || { echo "strace is missing (Debian package strace)"; exit 77; }
strace -f -o /dev/null -e trace=getpid -e inject=getpid:retval=1:when=1 true 2>/dev/null ||
  { echo "strace cannot inject faults here (ptrace refused?)"; exit 77; }

# The kill makes no power cut: the files are what the agent's processes wrote, fsynced or not. A
# tmpfs spares the hundreds of runs below their disk syncs.
WORK=$(mktemp -d /dev/shm/nixprov-test-crash.XXXXXX)
at_exit "rm -rf '$WORK'"
cd "$WORK"

MACHINE=4c4c4544004d3510804fb4c04f4d3733
run_id=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
AGENT=$BIN/nixprov-agent
NIXPROV=$BIN/nixprov
# Under the sanitizers' build: LeakSanitizer cannot run under ptrace (strace) and aborts at exit;
# AddressSanitizer and UBSan still check every run. (The later of two settings wins.)
[ -z "${ASAN_OPTIONS:-}" ] || export ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0"
token() { echo "eyJhbGciOiJIUzI1NiJ9.nixprov-crash-$1-$run_id.$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"; }
TOKEN_A1=$(token a1) TOKEN_A2=$(token a2) TOKEN_B=$(token b)

# A file:// mirror: no server round trips in the hundreds of runs (the reports wait in the spool).
MIRROR=$WORK/mirror/v1/machines/$MACHINE
mkdir -p "$MIRROR" root/etc
echo "$MACHINE" > root/etc/machine-id
# The rebuild stand-in: leaves its environment for the --root check, builds nothing.
cat > nixos-rebuild <<END_REBUILD
#!/bin/sh
if [ -e $WORK/dump-env ]; then
  cat /proc/self/environ | tr '\0' '\n' | sed -n 's/^\([A-Z_]*\)=.*/\1/p' > $WORK/rebuild.names
  printf '%s\n' "\$NIX_CONFIG" > $WORK/rebuild.nix-config
  printf '%s\n' "\${NIX_SSHOPTS:-}" > $WORK/rebuild.sshopts
  [ -z "\${NIX_SSHOPTS:-}" ] || cp "\${NIX_SSHOPTS#-F }" $WORK/rebuild.ssh_config
fi
exit 0
END_REBUILD
chmod +x nixos-rebuild
cat > agent.yaml <<END_CONFIG
server:
  urls: [file://$WORK/mirror]
  deadline: 20
  connect-timeout: 2
trusted-keys: [$(tail -n 1 "$KEYS/fleet.pub")]
rebuild:
  command: $WORK/nixos-rebuild
  path: /usr/bin:/bin
enroll: {wait: 0}
END_CONFIG
agent() { timeout 120 "$AGENT" "$@"; }
run_agent() { agent run --config agent.yaml --root root --cmdline - "$@"; }

expect_exit id 0 agent id --json --config agent.yaml --root root
BOX=$(jq -r .box_public_key id.out)
seal() { printf '%s\n' "$1" | "$NIXPROV" seal --to "$BOX" | sed -n 's/^{sealed: \(.*\)}$/\1/p'; }
ssh-keygen -q -t ed25519 -N '' -C builder-$run_id -f builder_ed25519
BUILDER_KEY_LINE=$(sed -n 2p builder_ed25519) # a line of the secret key, to look for
SEALED_KEY=$("$NIXPROV" seal --to "$BOX" --file builder_ed25519 | sed -n 's/^{sealed: \(.*\)}$/\1/p')
HOST_KEY=$(cut -d' ' -f1-2 builder_ed25519.pub)
CLOSED_PORT=$(free_port) # nothing listens: the builder does not answer, and is not required
cachix_key() { echo "$1.cachix.org-1:$(head -c 32 /dev/urandom | base64)"; }
KEY_A=$(cachix_key a) KEY_B=$(cachix_key b)

publish() { # publish SERIAL: 1 with both caches and the builder, 2 rotated and dropped
  {
    cat <<END_PROFILE
nixprov: 1
serial: $1
expires: 2099-01-01T00:00:00Z
machines: [$MACHINE]
strategy: remote-builders
nix:
  fallback-local: true
  settings:
    substituters: []
cachix:
  - name: a
    public-key: $KEY_A
    auth-token: {sealed: $(seal "$([ "$1" = 1 ] && echo "$TOKEN_A1" || echo "$TOKEN_A2")")}
    host: 127.0.0.1
END_PROFILE
    [ "$1" = 1 ] && cat <<END_PROFILE
  - name: b
    public-key: $KEY_B
    auth-token: {sealed: $(seal "$TOKEN_B")}
    host: 127.0.0.2
builders:
  - uri: ssh://root@127.0.0.1:$CLOSED_PORT
    systems: [x86_64-linux]
    host-key: $HOST_KEY
    identity: {sealed: $SEALED_KEY}
    required: false
END_PROFILE
    cat <<END_PROFILE
rebuild:
  timeout: 60
END_PROFILE
  } > "$MIRROR/profile"
  minisign -S -s "$KEYS/fleet.sec" -m "$MIRROR/profile" -x "$MIRROR/profile.minisig" \
    -t "serial $1" >/dev/null
}

# --- serial 1 under --root: the first build is given paths under the root only -------------------
publish 1
touch dump-env
expect_exit first 0 run_agent
rm dump-env
expect_grep first "provisioned at serial 1"
grep -q "^machine 127.0.0.2 password $TOKEN_B\$" root/etc/nix/nixprov-netrc || die "netrc: no cache b"
grep -qF "$BUILDER_KEY_LINE" root/etc/nix/nixprov-builder-0.key || die "the builder key is not written"
ok "serial 1 applied: two sealed tokens and a sealed builder key written"

ROOT_ABS=$(realpath root)
[ "$(grep -vxE "PWD|SHLVL|_" rebuild.names | sort | tr '\n' ' ')" = "HOME LANG NIX_CONFIG NIX_SSHOPTS PATH " ] ||
  die "the rebuild's environment: $(cat rebuild.names)"
[ -s rebuild.ssh_config ] || die "NIX_SSHOPTS names no ssh config: $(cat rebuild.sshopts)"
# Every path in NIX_CONFIG, NIX_SSHOPTS and the ssh config it names (words split on white space,
# ';' and '='; "@FILE" is a path too).
mapfile -t PATHS < <(cat rebuild.nix-config rebuild.sshopts rebuild.ssh_config | tr ' \t;=' '\n\n\n\n' |
  sed -n 's/^@\{0,1\}\(\/.*\)/\1/p')
[ "${#PATHS[@]}" -ge 4 ] || die "only ${#PATHS[@]} paths: $(cat rebuild.nix-config rebuild.sshopts)"
for p in "${PATHS[@]}"; do
  case "$p" in "$ROOT_ABS"/*) ;; *) die "the first build is given $p, outside the root $ROOT_ABS" ;; esac
done
for p in "$ROOT_ABS/etc/nix/nixprov-netrc" "$ROOT_ABS/etc/nix/nixprov-builder-0.key" \
  "$ROOT_ABS/var/lib/nixprov/first-build-ssh_config"; do
  printf '%s\n' "${PATHS[@]}" | grep -qxF "$p" || die "the first build is not given $p: ${PATHS[*]}"
done
grep -q "^builders = ssh://root@nixprov-builder-0 x86_64-linux $ROOT_ABS/etc/nix/nixprov-builder-0.key " \
  rebuild.nix-config || die "the builders: $(grep builders rebuild.nix-config)"
grep -qxF "  IdentityFile $ROOT_ABS/etc/nix/nixprov-builder-0.key" rebuild.ssh_config ||
  die "the ssh config: $(cat rebuild.ssh_config)"
# The files themselves keep the device's own paths; the first build's copy is gone.
grep -qF " /etc/nix/nixprov-builder-0.key " root/etc/nix/nixprov-machines || die "machines file"
grep -qxF "  IdentityFile /etc/nix/nixprov-builder-0.key" root/etc/nixprov/ssh_config || die "ssh_config"
[ ! -e root/var/lib/nixprov/first-build-ssh_config ] || die "the first build's ssh config is left"
ok "under --root, the first build is given ${#PATHS[@]} paths, all under the root (netrc, builders inline with their key, NIX_SSHOPTS' copy of the ssh config); the files keep the device's paths"

# --- the snapshot every kill starts from ----------------------------------------------------------
SPOOL=var/lib/nixprov/reports
tar -C root -cf before.tar .
mkdir before && tar -C before -xf before.tar
restore() { rm -rf root && mkdir root && tar -C root -xf "$WORK/before.tar"; }
publish 2

# The files a run writes, and what they hold after the update (a run with no kill).
expect_exit reference 0 run_agent
expect_grep reference "provisioned at serial 2"
tar -C root -cf after.tar .
mkdir after && tar -C after -xf after.tar
for t in "$TOKEN_A1" "$TOKEN_B" "$BUILDER_KEY_LINE"; do
  ! grep -rqaF -- "$t" after || die "the update leaves an old secret: $(grep -rlaF -- "$t" after)"
done
grep -qF "$TOKEN_A2" after/etc/nix/nixprov-netrc || die "the update did not rotate the token"
ok "serial 2 (a token rotated, a cache and the builder dropped) applied without a kill; no old secret left"

# --- how many calls of each kind the update makes, from the write phase on ------------------------
SYSCALLS=openat,creat,write,pwrite64,writev,fchmod,chmod,fsync,fdatasync,syncfs,link,linkat,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,ftruncate
restore
strace -f -o count.trace -e trace="$SYSCALLS" "$AGENT" run --config agent.yaml --root root \
  --cmdline - >count.out 2>&1 || { cat count.out >&2; die "the counting run failed"; }
expect_grep count "provisioned at serial 2"
AGENT_PID=$(head -n 1 count.trace | cut -d' ' -f1)
grep -qF 'write(2, "nixprov-agent: [write]' count.trace || die "no [write] mark in the trace"
# For each system call: how many the agent made before the mark, and in all.
mapfile -t POINTS < <(awk -v pid="$AGENT_PID" '
  $1 != pid { next }
  { name = $2; sub(/\(.*/, "", name) }
  name !~ /^[a-z_0-9]+$/ { next }
  !marked && name == "write" && index($0, "write(2, \"nixprov-agent: [write]") { marked = 1 }
  { total[name]++; if (!marked) before[name]++ }
  END { for (n in total) for (i = before[n] + 1; i <= total[n]; i++) print n, i }' count.trace |
  sort -k1,1 -k2,2n)
[ "${#POINTS[@]}" -gt 50 ] || die "only ${#POINTS[@]} kill points found: $(head -n 20 count.trace)"

# --- kill at each one, then run again -------------------------------------------------------------
# After each: every file as after the update, but the previous versions (FILE~) of files that
# are no secret, which may be the old or the new version; no other file.
cat > check.py <<'END_CHECK'
import json, os, stat, sys
point, secrets = sys.argv[1], [s.encode() for s in sys.argv[2:]]
skip = ("var/lib/nixprov/reports/", "var/log/nixprov/")
def files(top):
    out = {}
    for d, _, names in os.walk(top):
        for n in names:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, top)
            if not rel.startswith(skip) and rel != "var/lib/nixprov/last-run.json":
                out[rel] = p
    return out
def read(p):
    try:
        with open(p, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
def fail(msg):
    sys.exit(f"FAIL - {point}: {msg}")
root, before, after = files("root"), files("before"), files("after")
for d, dirs, names in os.walk("root"):
    for n in names + dirs:
        if ".nixprov-tmp-" in n:
            fail(f"a temporary file is left: {os.path.join(d, n)}")
        data = read(os.path.join(d, n)) if n in names else None
        for s in secrets:
            if data is not None and s in data:
                fail(f"an old secret is left in {os.path.join(d, n)}")
for rel, p in root.items():
    data = read(p)
    if rel == "var/lib/nixprov/applied":
        if not data.startswith(b"serial 2\n"):
            fail(f"applied: {data!r}")
    elif rel == "var/lib/nixprov/update":
        # The last update tried (health phase): it holds its time, so it is whole, not equal.
        if not (data.startswith(b"serial 2\noutcome applied\ntime ") and
                data.endswith(b"\n") and data.count(b"\n") == 9):
            fail(f"update: {data!r}")
    elif rel.endswith("~"):
        if stat.S_IMODE(os.stat(p).st_mode) & 0o077 == 0:
            fail(f"{rel}, a previous version of a secret file, is left")
        versions = [read(os.path.join("after", rel[:-1])), read(os.path.join("before", rel[:-1])),
                    read(os.path.join("before", rel))]
        if data not in versions:
            fail(f"{rel} is neither the old nor the new version")
    elif rel not in after or read(after[rel]) != data:
        fail(f"{rel} is not the update's version")
    elif os.stat(p).st_mode != os.stat(after[rel]).st_mode:
        fail(f"{rel} has mode {os.stat(p).st_mode:o}")
for rel in after:
    if not rel.endswith("~") and rel not in root:
        fail(f"{rel} is missing")
try:
    with open("root/var/lib/nixprov/last-run.json") as f:
        json.load(f)["outcome"]
except (ValueError, KeyError) as e:
    fail(f"last-run.json is torn: {e}")
END_CHECK
# kill_points DIR POINT...: one worker, in DIR (its own root), each point in turn; writes
# "TRIED KILLED" to DIR/result.
kill_points() {
  local dir=$1 point killed=0 tried=0 rc
  shift
  mkdir "$dir" && cd "$dir" && ln -s ../before ../after ../check.py .
  for point in "$@"; do
    set -- $point
    restore
    # (in a shell of its own, whose stderr does not say "Killed" each time)
    rc=$(bash -c '"$@" >kill.out 2>&1; echo $?' _ timeout 120 strace -f -o /dev/null \
      -e trace="$1" -e inject="$1":signal=KILL:when="$2" \
      "$AGENT" run --config ../agent.yaml --root root --cmdline - 2>/dev/null)
    tried=$((tried + 1))
    [ "$rc" = 137 ] && killed=$((killed + 1))
    run after-kill agent run --config ../agent.yaml --root root --cmdline -
    [ "$rc" = 0 ] || { cat kill.out after-kill.out >&2; die "$point: the run after the kill: exit $rc"; }
    python3 check.py "$1 #$2" "$TOKEN_A1" "$TOKEN_B" "$BUILDER_KEY_LINE" || exit 1
  done
  echo "$tried $killed" > result
}
# Two workers (CRASH_WORKERS): the runs wait on the scheduler more than they use a core.
WORKERS=${CRASH_WORKERS:-2}
pids=()
for ((w = 0; w < WORKERS; w++)); do
  mine=()
  for ((i = w; i < ${#POINTS[@]}; i += WORKERS)); do mine+=("${POINTS[i]}"); done
  (kill_points "worker-$w" "${mine[@]}") &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || die "a worker failed (above)"; done
tried=0 killed=0
for ((w = 0; w < WORKERS; w++)); do
  read -r t k < "worker-$w/result"
  tried=$((tried + t)) killed=$((killed + k))
done
[ "$tried" = "${#POINTS[@]}" ] || die "$tried kill points tried of ${#POINTS[@]}"
echo "kill points tried: $tried (the agent was killed at $killed of them)"
[ "$killed" -ge $((tried * 9 / 10)) ] || die "only $killed of $tried kill points killed the agent"
ok "SIGKILL at each of $tried system calls of the update, then a run: no temporary file, no torn file, serial 2 applied, no old secret under the root"

echo "$checks passed, 0 failed"
