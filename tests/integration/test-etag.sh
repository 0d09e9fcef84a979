#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Cheap polling: the profile answers carry an ETag, the agent keeps the applied profile's and
# asks If-None-Match, and a 304 is "nothing new": nothing downloaded, nothing verified, reported
# up-to-date. Against the real nixprov serve (its counter nixprov_profile_not_modified_total)
# and against the real nginx serving the profile as static files (its access log).
source "$(dirname "$0")/lib.sh"
command -v nginx >/dev/null || { echo "skipped: no nginx (Debian package nginx-light)"; exit 77; }

AGENT=$BIN/nixprov-agent
MACHINE=4c4c4544004d3510804fb4c04f4d3732
STATE=root/var/lib/nixprov
curl() { nixprov_curl "$@"; } # with the device's proof and the operator's token

mkdir -p data/machines root/etc
echo "$MACHINE" > root/etc/machine-id
cat > rebuild <<EOF
#!/bin/sh
echo "\$*" >> $TMP/rebuild.calls
EOF
chmod +x rebuild
touch rebuild.calls

publish() { # publish FILE SERIAL [COMMENT]: a signed profile for MACHINE
  printf 'nixprov: 1\nserial: %s\nexpires: 2099-01-01T00:00:00Z\nmachines: [%s]\n' "$2" "$MACHINE" > "$1"
  printf 'strategy: binary-caches\nnix:\n  settings:\n    substituters: []\n' >> "$1"
  minisign -S -s "$KEYS/fleet.sec" -m "$1" -t "${3:-serial $2}" >/dev/null
}
write_config() { # write_config NAME URL
  {
    echo "server: {urls: [$2], deadline: 10, connect-timeout: 2}"
    echo "trusted-keys: [$(tail -n 1 "$KEYS/fleet.pub")]"
    echo "rebuild: {command: $TMP/rebuild}"
    echo "enroll: {wait: 0}"
  } > "$1.yaml"
}
agent_run() { timeout 120 "$AGENT" run --config "$1.yaml" --root "${2:-root}" --cmdline -; }
metric() { curl -fs --noproxy '*' "$SERVER_URL/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
etag_of() { curl -fsI --noproxy '*' "$1" | tr -d '\r' | awk 'tolower($1) == "etag:" {print $2}'; }
history() { curl -fs --noproxy '*' "$SERVER_URL/v1/machines/$MACHINE" > history.json; }

# --- nixprov serve ------------------------------------------------------------------------------
approve_machines "$MACHINE"
start_server "$TMP/data" "$TMP/server.db" -v
write_config serve "$SERVER_URL"
publish "data/machines/$MACHINE.yaml" 1
expect_exit first 0 agent_run serve
expect_grep first "provisioned at serial 1"
PROFILE_URL=$SERVER_URL/v1/machines/$MACHINE/profile
tag=$(etag_of "$PROFILE_URL")
[[ $tag =~ ^\"[0-9a-f]{32}\"$ ]] || die "the profile's ETag is not a strong hash: '$tag'"
[ "$(etag_of "$PROFILE_URL.minisig")" = "$tag" ] || die "the signature has another ETag than its profile"
[ "$(cat "$STATE/profile.etag")" = "serial 1
etag $tag" ] || die "profile.etag: $(cat "$STATE/profile.etag")"
[ "$(stat -c %a "$STATE/profile.etag")" = 600 ] || die "profile.etag is not 0600"
ok "serve: the profile and its signature carry the same strong ETag $tag; the agent keeps it (0600) with serial 1"

# By hand: a matching If-None-Match (strong, weak, in a list, *) is 304 without a body.
for inm in "$tag" "W/$tag" "\"other\", $tag" "*"; do
  code=$(curl -s --noproxy '*' -o body.out -D headers.out -w '%{http_code}' -H "If-None-Match: $inm" "$PROFILE_URL")
  [ "$code" = 304 ] || die "If-None-Match: $inm answered $code"
  [ ! -s body.out ] || die "a 304 with a body: $(cat body.out)"
  grep -qi "^etag: $tag" headers.out || die "the 304 has no ETag: $(cat headers.out)"
done
code=$(curl -s --noproxy '*' -o body.out -w '%{http_code}' -H 'If-None-Match: "0123"' "$PROFILE_URL")
[ "$code" = 200 ] && cmp -s body.out "data/machines/$MACHINE.yaml" || die "another tag: $code"
code=$(curl -s --noproxy '*' -o body.out -w '%{http_code}' -H "If-None-Match: $tag" "$PROFILE_URL.minisig")
[ "$code" = 304 ] || die "the signature with its tag: $code"
code=$(curl -s --noproxy '*' -o body.out -w '%{http_code}' "$PROFILE_URL?wait=x")
[ "$code" = 400 ] && grep -qF 'invalid wait: expected seconds from 0 to 3600' body.out || die "wait=x: $code $(cat body.out)"
[ "$(metric nixprov_profile_not_modified_total)" = 5 ] || die "counter: $(metric nixprov_profile_not_modified_total)"
ok "serve: If-None-Match with the tag (strong, W/, in a list, *) is 304 with no body, another tag 200; counted"

# The second run: 304, nothing downloaded or verified, no rebuild, reported up-to-date.
sigs=$(grep -c 'profile.minisig' "$TMP/server.log" || true)
calls=$(wc -l < rebuild.calls)
expect_exit second 0 agent_run serve
expect_grep second "304 Not Modified"
expect_grep second "Nothing new: the server answered 304 Not Modified for serial 1, which is applied."
grep -q '\[verify\]' second.out && die "a 304 was verified"
[ "$(metric nixprov_profile_not_modified_total)" = 6 ] || die "the agent's 304 is not counted"
[ "$(grep -c 'profile.minisig' "$TMP/server.log" || true)" = "$sigs" ] || die "the signature was downloaded"
[ "$(wc -l < rebuild.calls)" = "$calls" ] || die "the rebuild ran"
history
jq -e '.reports | last | .phase == "done" and .status == "ok" and .serial == 1 and
  (.message | startswith("up-to-date: 304 Not Modified"))' history.json >/dev/null ||
  die "final report: $(jq -c '.reports | last' history.json)"
jq -e '.not_modified == true and .serial == 1 and .outcome == "ok"' "$STATE/last-run.json" >/dev/null ||
  die "last-run.json: $(cat "$STATE/last-run.json")"
ok "serve: the next run gets 304 (counted): no signature download, no verify, no rebuild; reported up-to-date at serial 1"

# Re-signing the same profile changes the tag: downloaded, verified, nothing to do, tag kept.
minisign -S -s "$KEYS/fleet.sec" -m "data/machines/$MACHINE.yaml" -t "serial 1, signed again" >/dev/null
tag2=$(etag_of "$PROFILE_URL")
[ "$tag2" != "$tag" ] || die "a new signature did not change the ETag"
expect_exit resigned 0 agent_run serve
expect_grep resigned "Nothing to do: serial 1 is already applied."
grep -q "etag $tag2" "$STATE/profile.etag" || die "the new tag was not kept"
ok "serve: a new signature changes the tag; the run verifies, has nothing to do, keeps the new tag"

# A damaged profile.etag is a full fetch, not an error; a tag of another serial is not sent.
echo "garbage" > "$STATE/profile.etag"
n=$(metric nixprov_profile_not_modified_total)
expect_exit damaged 0 agent_run serve
expect_grep damaged "Nothing to do: serial 1 is already applied."
[ "$(metric nixprov_profile_not_modified_total)" = "$n" ] || die "a damaged tag was sent"
printf 'serial 7\netag %s\n' "$tag2" > "$STATE/profile.etag"
expect_exit other-serial 0 agent_run serve
expect_grep other-serial "Nothing to do: serial 1 is already applied."
[ "$(metric nixprov_profile_not_modified_total)" = "$n" ] || die "the tag of another serial was sent"
ok "serve: a damaged profile.etag, or one of another serial, is not sent: a full fetch, the tag rewritten"

# A new serial: the tag differs, it is downloaded and applied.
publish "data/machines/$MACHINE.yaml" 2
expect_exit update 0 agent_run serve
expect_grep update "provisioned at serial 2"
grep -q '^serial 2$' "$STATE/profile.etag" || die "profile.etag after the update: $(cat "$STATE/profile.etag")"
ok "serve: a new serial is fetched in full and applied; the tag of serial 2 is kept"

# --- nginx serving the same layout as static files -----------------------------------------------
mkdir -p "www/v1/machines/$MACHINE" nginx
NGINX_PORT=$(free_port)
cat > nginx/nginx.conf <<EOF
user root;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
events { worker_connections 64; }
http {
  log_format st escape=none '\$request_method \$uri \$status "\$http_if_none_match" "\$sent_http_etag"';
  access_log $TMP/nginx/access.log st;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $TMP/www;
  }
}
EOF
nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" -g 'daemon off;' 2>nginx/stderr &
NGINX_PID=$!
at_exit "kill $NGINX_PID 2>/dev/null; wait $NGINX_PID 2>/dev/null"
publish "www/v1/machines/$MACHINE/profile" 1
wait_http "http://127.0.0.1:$NGINX_PORT/v1/machines/$MACHINE/profile"
mkdir -p root2/etc
echo "$MACHINE" > root2/etc/machine-id
write_config nginx "http://127.0.0.1:$NGINX_PORT"
expect_exit nginx-first 0 agent_run nginx root2
expect_grep nginx-first "provisioned at serial 1"
ntag=$(etag_of "http://127.0.0.1:$NGINX_PORT/v1/machines/$MACHINE/profile")
grep -qF "etag $ntag" root2/var/lib/nixprov/profile.etag || die "nginx's tag $ntag was not kept"
expect_exit nginx-second 0 agent_run nginx root2
expect_grep nginx-second "304 Not Modified"
grep -qF "GET /v1/machines/$MACHINE/profile 304 \"$ntag\"" nginx/access.log ||
  die "no 304 in nginx's access log: $(cat nginx/access.log)"
[ "$(grep -c "profile.minisig 200" nginx/access.log)" = 1 ] || die "the signature was downloaded again"
ok "nginx: the agent keeps nginx's ETag $ntag; the next run is a 304 in nginx's access log, no download"

sleep 1.1 # another mtime, so another nginx ETag
publish "www/v1/machines/$MACHINE/profile" 2
expect_exit nginx-update 0 agent_run nginx root2
expect_grep nginx-update "provisioned at serial 2"
ok "nginx: a new profile (another mtime and size) is fetched and applied"

echo "$checks passed, 0 failed"
