#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# nixprov-agent rebuild with the real Nix (single-user, as root): a tiny closure substituted
# from a local binary cache served on 127.0.0.1, built locally, a failing build; then the
# child's treatment: timeout killing the whole process group, clean environment, stdin, the
# descriptors it gets, and the log file.
#
# Every Nix call here sets substituters to empty or to the cache on 127.0.0.1: nothing may
# reach the internet.
source "$(dirname "$0")/lib.sh"

# 77: CTest reports the test as skipped (SKIP_RETURN_CODE), and scripts/test.sh fails on a skip.
command -v nix-build >/dev/null || { echo "skipped: no nix-build"; exit 77; }

AGENT=$BIN/nixprov-agent
STANDIN=$SRC/tests/integration/rebuild-standin.sh
CLOSURE=$SRC/tests/data/nix/closure.nix
HOST_NIX="build-users-group =
sandbox = false
connect-timeout = 5"
run_id=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
# A secret in the agent's own environment: it must never reach the child.
export NIXPROV_SECRET_MARKER="marker-$run_id"
mkdir logs
chmod 0750 logs

# elapsed START: seconds since START (date +%s.%N), 2 decimals.
elapsed() { python3 -c "import sys; print('%.2f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(date +%s.%N)"; }
# field NAME.out KEY: a field of the JSON result printed by --json (last line of stdout).
field() { grep '^{' "$1" | tail -n1 | jq -r ".$2"; }
nixcall() { NIX_CONFIG="$HOST_NIX
substituters =
experimental-features = nix-command" timeout 120 "$@"; }

# --- a binary cache on 127.0.0.1 with the closure, which is then removed from the store ------
cached_nonce=cached-$run_id
start=$(date +%s.%N)
out=$(nixcall nix-build --no-out-link "$CLOSURE" --argstr nonce "$cached_nonce" 2>build.err) ||
  { cat build.err >&2; die "building the closure for the cache failed"; }
nixcall nix-store --generate-binary-cache-key "nixprov-test-$run_id" cache.sec cache.pub
nixcall nix copy --to "file://$TMP/cache?secret-key=$TMP/cache.sec" "$out" 2>copy.err ||
  { cat copy.err >&2; die "nix copy failed"; }
mapfile -t closure_paths < <(nixcall nix-store -qR "$out")
[ "${#closure_paths[@]}" -eq 3 ] || die "expected 3 paths in the closure, got ${#closure_paths[@]}"
nixcall nix-store --delete "${closure_paths[@]}" >/dev/null 2>delete.err ||
  { cat delete.err >&2; die "nix-store --delete failed"; }
for p in "${closure_paths[@]}"; do [ ! -e "$p" ] || die "$p is still in the store"; done

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd cache && exec python3 -m http.server --bind 127.0.0.1 "$port") >http.log 2>&1 &
http_pid=$!
at_exit "kill $http_pid; wait $http_pid"
for _ in $(seq 50); do
  curl -fs "http://127.0.0.1:$port/nix-cache-info" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$port/nix-cache-info" >/dev/null || die "the cache server did not start"
ok "local binary cache with 3 paths on 127.0.0.1:$port, paths removed from the store ($(elapsed "$start") s)"

# --- (a) substituted from the cache, passed through NIX_CONFIG -------------------------------
printf 'substituters = http://127.0.0.1:%s\ntrusted-public-keys = %s\n' "$port" "$(cat cache.pub)" \
  >cache.conf
start=$(date +%s.%N)
expect_exit subst 0 timeout 300 "$AGENT" rebuild --json --nix-config cache.conf --timeout 120 \
  --log logs/subst.log -- "$STANDIN" "$CLOSURE" "$cached_nonce"
t=$(elapsed "$start")
[ "$(field subst.out substituted)" = 3 ] || { cat subst.out >&2; die "subst: substituted != 3"; }
[ "$(field subst.out built_local)" = 0 ] || { cat subst.out >&2; die "subst: built locally"; }
[ "$(field subst.out built_remote)" = 0 ] || die "subst: built remotely"
[ "$(field subst.out downloaded_bytes)" -gt 0 ] || die "subst: no bytes downloaded"
[ "$(field subst.out bad_lines)" = 0 ] || die "subst: bad lines in Nix's log"
for p in "${closure_paths[@]}"; do [ -e "$p" ] || die "$p was not substituted"; done
grep -q 'GET /nix-cache-info' http.log || die "the cache was not asked"
ok "(a) with the cache in NIX_CONFIG: substituted 3, built 0, $(field subst.out downloaded_bytes) bytes downloaded ($t s)"

# --- (b) no substituters: everything built locally --------------------------------------------
printf 'substituters =\n' >empty.conf
start=$(date +%s.%N)
expect_exit build 0 timeout 300 "$AGENT" rebuild --nix-config empty.conf --timeout 120 \
  --log logs/build.log -- "$STANDIN" "$CLOSURE" "built-$run_id"
t=$(elapsed "$start")
expect_grep build "substituted: 0"
expect_grep build "built locally: 3"
expect_grep build "built remotely: 0"
expect_grep build "outcome: success"
ok "(b) without substituters: built locally 3, substituted 0 ($t s)"

# --- (c) a failing build ----------------------------------------------------------------------
start=$(date +%s.%N)
expect_exit fail 7 timeout 300 "$AGENT" rebuild --nix-config empty.conf --timeout 120 \
  --log logs/fail.log -- "$STANDIN" "$CLOSURE" "fail-$run_id" --arg fail true
t=$(elapsed "$start")
# nix-build exits 100 when a build failed.
expect_grep fail "outcome: failed with exit status 100"
expect_grep fail "last error: error: builder for '"
expect_grep fail "nixprov-demo-c.drv' failed with exit code 1"
expect_grep fail "log tail:"
expect_grep fail "nixprov-demo-c: deliberate failure"
expect_grep fail "nixprov-agent: error: Rebuild failed with exit status 100: error: builder for"
if grep -q $'\e' fail.out; then die "fail: escape sequences in the output"; fi
expect_exit fail-json 7 "$AGENT" rebuild --json --nix-config empty.conf -- "$STANDIN" \
  "$CLOSURE" "fail-$run_id" --arg fail true
[ "$(field fail-json.out exit_status)" = 100 ] || die "fail-json: exit_status"
field fail-json.out error | grep -q "failed with exit code 1" || die "fail-json: no error"
field fail-json.out tail | grep -q "deliberate failure" || die "fail-json: no tail"
ok "(c) a failing build: exit 7, Nix's error message and the log tail ($t s)"

# --- (d) timeout: the whole process group is killed -------------------------------------------
# The sleeps carry the marker in their arguments, so pgrep -f finds every one of them.
m=$((RANDOM % 9000 + 1000))$((RANDOM % 9000 + 1000))
start=$(date +%s.%N)
expect_exit timeout 7 timeout 60 "$AGENT" rebuild --timeout 1 -- sh -c \
  "sleep 600$m & sh -c 'sleep 601$m' & echo started; sleep 602$m"
t=$(elapsed "$start")
expect_grep timeout "Rebuild timed out after 1 s; its process group was killed."
expect_grep timeout "outcome: timed out, process group killed"
sleep 0.2
if pgrep -af "60[012]$m"; then die "timeout: processes of the group survived"; fi
python3 -c "import sys; sys.exit(not 1.0 <= float(sys.argv[1]) < 5)" "$t" ||
  die "timeout: took $t s for a 1 s timeout"
ok "(d) timeout after 1 s: SIGTERM killed the group, no process left ($t s)"

m=$((RANDOM % 9000 + 1000))$((RANDOM % 9000 + 1000))
start=$(date +%s.%N)
expect_exit timeout-kill 7 timeout 60 "$AGENT" rebuild --json --timeout 1 --kill-grace 2 -- \
  sh -c "trap '' TERM; sleep 610$m & sleep 611$m"
t=$(elapsed "$start")
[ "$(field timeout-kill.out timed_out)" = true ] || die "timeout-kill: not timed out"
[ "$(field timeout-kill.out signal)" = 9 ] || die "timeout-kill: not killed by SIGKILL"
sleep 0.2
if pgrep -af "61[01]$m"; then die "timeout-kill: processes of the group survived"; fi
python3 -c "import sys; sys.exit(not 3.0 <= float(sys.argv[1]) < 7)" "$t" ||
  die "timeout-kill: took $t s for 1 s + 2 s grace"
ok "(d) a group ignoring SIGTERM: SIGKILL after the 2 s grace, no process left ($t s)"

# Leftovers of a command that exits are killed with it.
m=$((RANDOM % 9000 + 1000))$((RANDOM % 9000 + 1000))
expect_exit leftover 0 timeout 60 "$AGENT" rebuild -- sh -c "sleep 620$m & exit 0"
sleep 0.2
if pgrep -af "620$m"; then die "leftover: a background process of the group survived"; fi
ok "(d) a background process left by a command that exits is killed with its group"

# --- (e) a clean environment ------------------------------------------------------------------
# cat reads the environment it was executed with, NUL-separated; no shell in between.
printf 'substituters =\nmax-jobs = 2\n' >env.conf
expect_exit env 0 env NIX_PATH=x NIX_REMOTE=daemon LD_PRELOAD= "$AGENT" rebuild \
  --nix-config env.conf --log logs/env.log -- cat /proc/self/environ
python3 - logs/env.log env.conf <<'EOF' || die "env: the child's environment is not clean"
import sys
entries = [e for e in open(sys.argv[1], "rb").read().split(b"\0") if e]
env = dict(e.decode().split("=", 1) for e in entries)
want_config = open(sys.argv[2]).read()
assert sorted(env) == ["HOME", "LANG", "NIX_CONFIG", "PATH"], sorted(env)
assert env["HOME"] == "/root" and env["LANG"] == "C.UTF-8", env
assert env["NIX_CONFIG"] == want_config, env["NIX_CONFIG"]
assert env["PATH"].startswith("/run/current-system/sw/bin:"), env["PATH"]
EOF
if grep -q "$NIXPROV_SECRET_MARKER" logs/env.log; then die "env: the marker leaked"; fi
ok "(e) the child's environment is exactly PATH, HOME, LANG, NIX_CONFIG; NIXPROV_SECRET_MARKER absent"

# --- (f) stdin is /dev/null, and no descriptor of the agent leaks -----------------------------
# The agent's own stdin is a pipe that never ends, and it holds fd 9 open without O_CLOEXEC.
mkfifo never-ends
sleep 60 >never-ends &
writer_pid=$!
at_exit "kill $writer_pid"
expect_exit stdin 0 timeout 20 "$AGENT" rebuild --log logs/stdin.log -- \
  sh -c 'readlink /proc/self/fd/0; cat; echo cat-ended; ls /proc/self/fd' <never-ends 9<"$CLOSURE"
grep -qx /dev/null logs/stdin.log || { cat logs/stdin.log >&2; die "stdin: not /dev/null"; }
grep -qx cat-ended logs/stdin.log || die "stdin: cat did not end"
[ "$(grep -xE '[0-9]+' logs/stdin.log | sort -n | tr '\n' ' ')" = "0 1 2 3 " ] ||
  { cat logs/stdin.log >&2; die "stdin: descriptors other than 0, 1, 2 (and ls's own 3)"; }
ok "(f) stdin is /dev/null; the child has only descriptors 0, 1, 2"

# --- (g) the log file -------------------------------------------------------------------------
for f in subst build fail env stdin; do
  [ "$(stat -c %a "logs/$f.log")" = 640 ] || die "logs/$f.log: mode $(stat -c %a "logs/$f.log")"
done
[ "$(wc -l <logs/subst.log)" = "$(field subst.out lines)" ] || die "subst.log: lines differ"
grep -q '^building the system configuration\.\.\.$' logs/subst.log || die "subst.log: no plain line"
[ "$(grep -c '^@nix {"action":"start".*"type":108}$' logs/subst.log)" = 3 ] ||
  die "subst.log: not all of Nix's log"
grep -q "deliberate failure" logs/fail.log || die "fail.log: no builder output"
(umask 077 && "$AGENT" rebuild --log logs/umask.log -- true >/dev/null)
[ "$(stat -c %a logs/umask.log)" = 640 ] || die "umask.log: mode $(stat -c %a logs/umask.log)"
cp logs/build.log build.log.before
expect_exit log-exists 7 "$AGENT" rebuild --log logs/build.log -- echo overwritten
expect_grep log-exists "exists already"
cmp -s logs/build.log build.log.before || die "log-exists: an existing log was changed"
ln -s "$TMP/elsewhere" logs/link.log
expect_exit log-symlink 7 "$AGENT" rebuild --log logs/link.log -- true
[ ! -e elsewhere ] || die "log-symlink: followed a symlink"
ok "(g) logs hold the whole output, mode 0640 whatever the umask, never replaced nor followed"

# --- usage ------------------------------------------------------------------------------------
expect_exit no-command 2 "$AGENT" rebuild --timeout 5
expect_exit bad-timeout 2 "$AGENT" rebuild --timeout -1 -- true
expect_exit help 0 "$AGENT" rebuild --help
expect_grep help "--nix-config FILE"
expect_exit not-found 7 "$AGENT" rebuild -- nixprov-no-such-command
expect_grep not-found "Could not run the rebuild command nixprov-no-such-command: No such file"
ok "usage errors exit 2; a missing command exits 7"

echo "all $checks checks passed"
