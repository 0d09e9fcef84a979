#!/usr/bin/env bash
# One run at a time (the lock STATE/run.lock, agent/engine.c): a second run started while the
# first is in its rebuild waits for it, then finds the serial applied (the server answers 304) and does nothing. Without
# the lock it would fetch, write and rebuild beside the first (the serial is recorded only at the
# end), and the stand-in below would be called twice. Real nixprov serve; the rebuild command is
# a script that holds the first run until the test releases it.
source "$(dirname "$0")/lib.sh"

MACHINE=4c4c4544004d3510804fb4c04f4d3732
mkdir -p data/machines root/etc
echo "$MACHINE" >root/etc/machine-id
approve_machines "$MACHINE"
start_server "$TMP/data"

cat >rebuild <<EOF
#!/bin/sh
echo "\$\$ \$*" >>$TMP/rebuild.calls
touch $TMP/rebuild.started
while [ ! -e $TMP/release ]; do sleep 0.05; done
EOF
chmod +x rebuild
cat >agent.yaml <<EOF
server:
  urls: [$SERVER_URL]
  deadline: 20
trusted-keys: [$(tail -n 1 "$KEYS/fleet.pub")]
rebuild:
  command: $TMP/rebuild
  path: /usr/bin:/bin
enroll: {wait: 0}
EOF
printf 'nixprov: 1\nserial: 1\nexpires: 2099-01-01T00:00:00Z\nmachines: [%s]\nstrategy: source\nrebuild:\n  timeout: 120\n' \
  "$MACHINE" >"data/machines/$MACHINE.yaml"
minisign -S -s "$KEYS/fleet.sec" -m "data/machines/$MACHINE.yaml" -t "serial 1" >/dev/null
agent() { timeout 120 "$BIN/nixprov-agent" run --config agent.yaml --root root --cmdline - "$@"; }

agent >first.out 2>&1 &
first=$!
wait_for_file "$TMP/rebuild.started"
agent >second.out 2>&1 &
second=$!
for _ in $(seq 200); do grep -q "waiting for it to end" second.out && break; sleep 0.05; done
expect_grep second "Another run holds root/var/lib/nixprov/run.lock: waiting for it to end."
kill -0 "$second" 2>/dev/null || die "the second run did not wait"
[ "$(wc -l <rebuild.calls)" = 1 ] || die "a second rebuild started beside the first: $(cat rebuild.calls)"
[ "$(stat -c %a root/var/lib/nixprov/run.lock)" = 600 ] || die "run.lock is not 0600"
ok "a second run waits for the first, which is in its rebuild"

touch release
wait "$first" || die "the first run failed: $(cat first.out)"
rc=0
wait "$second" || rc=$?
[ "$rc" = 0 ] || { cat second.out >&2; die "the second run exited $rc"; }
expect_grep first "provisioned at serial 1"
expect_grep second "Nothing new: the server answered 304 Not Modified for serial 1, which is applied."
[ "$(wc -l <rebuild.calls)" = 1 ] || die "the second run rebuilt too: $(cat rebuild.calls)"
ok "then it finds serial 1 applied and does nothing: one rebuild in all"
