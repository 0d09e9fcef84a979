#!/usr/bin/env bash
# nixos/ evaluated with the real NixOS module system and NixOS's own option declarations (the
# kit in $NIXOS_EVAL_KIT; see its README): services.nixprov-agent with typical and edge
# settings (the rendered unit files, agent.yaml, which the real agent parses), the initrd unit
# and its failure policy, the module the agent generates for each example profile (NixOS's
# /etc/nix/machines and nix.conf against the agent's files for non-NixOS hosts), the import of
# the generated module, and wrong settings failing with the module system's own message.
# programs.ssh.extraConfig is not in the kit: tests/data/nixos/ssh-stub.nix declares it with
# upstream's type (types.lines). Nothing is built; nothing leaves this machine.
. "$(dirname "$0")/lib.sh"

KIT=${NIXOS_EVAL_KIT:-}
[ -n "$KIT" ] && [ -x "$KIT/run" ] || { echo "SKIP: NIXOS_EVAL_KIT is not set to the kit"; exit 77; }
command -v nix-instantiate >/dev/null || { echo "SKIP: no nix-instantiate"; exit 77; }
D=$SRC/tests/data/nixos
PKG=/nix/store/00000000000000000000000000000000-nixprov-0.1.0
TEST_RENDER=${TEST_RENDER:-$BIN/../tests/test-render}
export HOME=$TMP/home
mkdir -p "$HOME"

# evaluate NAME MODULE... [--attr PATH]...: the kit's JSON in NAME.json; exit code in $rc.
evaluate() {
  local name=$1
  shift
  rc=0
  "$KIT/run" "$@" --allow "$SRC/nixos" --allow "$D" --allow "$TMP" >"$name.json" 2>"$name.err" || rc=$?
}
must_evaluate() {
  evaluate "$@"
  [ "$rc" -eq 0 ] || { cat "$1.err" >&2; die "$1: evaluation failed"; }
  [ "$(jq -c .warnings "$1.json")" = "[]" ] || die "$1: warnings $(jq -c .warnings "$1.json")"
}
# unit NAME JQPATH: the unitText at JQPATH of NAME.json into NAME.unit.
unit() { jq -er "$2.unitText" "$1.json" >"$1.unit" || die "$1: no unit at $2"; }
# has NAME LINE...: each LINE is a whole line of NAME.unit; lacks: none is.
has() {
  local f=$1.unit l
  shift
  for l in "$@"; do grep -qxF -- "$l" "$f" || { cat "$f" >&2; die "$f: no line '$l'"; }; done
}
lacks() {
  local f=$1.unit l
  shift
  for l in "$@"; do ! grep -q -- "^$l" "$f" || { cat "$f" >&2; die "$f: has '$l'"; }; done
}
# machines_norm: a machines file with each line's supported features (field 6) joined with its
# mandatory ones (field 7) and sorted: NixOS writes supportedFeatures ++ mandatoryFeatures there,
# the agent the profile's list, and Nix takes a mandatory feature as supported either way.
machines_norm() {
  awk '{ n = 0; delete seen; out = ""
         for (k = 6; k <= 7; k++) { c = split($k, f, ","); for (i = 1; i <= c; i++) if (f[i] != "-" && !(f[i] in seen)) { seen[f[i]] = 1; l[++n] = f[i] } }
         for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (l[j] < l[i]) { t = l[i]; l[i] = l[j]; l[j] = t }
         for (i = 1; i <= n; i++) out = out (i > 1 ? "," : "") l[i]
         $6 = (n ? out : "-"); print }'
}

# agent_yaml NAME EXPECTED: /etc/nixprov/agent.yaml of NAME is EXPECTED (as JSON) and the real
# agent's strict parser takes it.
agent_yaml() {
  jq -er '.environment.etc."nixprov/agent.yaml".text' "$1.json" >"$1.agent.yaml"
  diff -u <(jq -S . "$2") <(jq -S . "$1.agent.yaml") >&2 || die "$1: agent.yaml differs from $2"
  mkdir -p "root-$1"
  expect_exit "$1-id" 0 "$BIN/nixprov-agent" id --config "$1.agent.yaml" --root "root-$1" \
    --machine-id 4c4c4544004d3510804fb4c04f4d3732
}

# --- typical ----------------------------------------------------------------------------------
must_evaluate typical "$D/typical.nix"
agent_yaml typical "$D/typical.agent.json"
ok "typical: evaluates without a warning; agent.yaml is the options' text and the agent parses it"

unit typical '.systemd.services."nixprov-agent"'
has typical "ExecStart=$PKG/bin/nixprov-agent run --config /etc/nixprov/agent.yaml" \
  "After=network-online.target" "Wants=network-online.target" "Type=oneshot" \
  "RemainAfterExit=true" "Restart=on-failure" "RestartPreventExitStatus=2 4 6 9 10 11" \
  "RestartSec=60s" "KillMode=process" "TimeoutStartSec=infinity" "StartLimitIntervalSec=1h" \
  "StartLimitBurst=6" "X-RestartIfChanged=false" "X-StopOnRemoval=false" \
  "WantedBy=multi-user.target"
# The same semantics as systemd/nixprov-agent.service.in, key by key.
for key in Type Restart RestartSec RestartPreventExitStatus KillMode TimeoutStartSec \
  StartLimitIntervalSec StartLimitBurst Wants After; do
  want=$(grep "^$key=" "$SRC/systemd/nixprov-agent.service.in") || die "systemd/: no $key"
  grep -qxF -- "$want" typical.unit || die "the NixOS unit's $key differs from systemd/'s '$want'"
done
ok "stage 2: oneshot after network-online, retried but not on 2 4 6 9 10 11, KillMode=process, not restarted by a switch; as systemd/"

cp typical.json update.json
unit update '.systemd.services."nixprov-agent-update"'
has update "ExecStart=$PKG/bin/nixprov-agent run --config /etc/nixprov/agent.yaml" \
  "After=network-online.target nixprov-agent.service" "KillMode=process" "Type=oneshot" \
  "X-RestartIfChanged=false"
lacks update "Restart=" "RemainAfterExit=" "WantedBy="
cp typical.json timer.json
unit timer '.systemd.timers."nixprov-agent"'
has timer "Unit=nixprov-agent-update.service" "OnBootSec=15min" "OnCalendar=hourly" \
  "RandomizedDelaySec=30min" "Persistent=true" "WantedBy=timers.target"
for key in Unit OnBootSec OnCalendar RandomizedDelaySec; do
  grep -qxF -- "$(grep "^$key=" "$SRC/systemd/nixprov-agent.timer")" timer.unit ||
    die "the NixOS timer's $key differs from systemd/'s"
done
ok "the timer starts nixprov-agent-update.service 15 min after boot, hourly, spread 30 min, persistent; as systemd/"

cp typical.json initrd.json
unit initrd '.boot.initrd.systemd.services."nixprov-agent"'
has initrd "ExecStart=$PKG/bin/nixprov-agent run --root /sysroot --no-rebuild --config /etc/nixprov/agent.yaml" \
  "After=sysroot.mount network-online.target" "Requires=sysroot.mount" \
  "Before=initrd-switch-root.target initrd-nixos-activation.service" \
  "DefaultDependencies=false" "ConditionPathExists=/etc/initrd-release" \
  "OnFailure=emergency.target" "SuccessExitStatus=3" "WantedBy=initrd.target" "Type=oneshot"
evaluate initrd-files "$D/typical.nix" --attr boot.initrd.systemd.contents --attr boot.initrd.systemd.storePaths
[ "$rc" -eq 0 ] || { cat initrd-files.err >&2; die "initrd contents"; }
[ "$(jq -r '."boot.initrd.systemd.contents"."/etc/nixprov/agent.yaml".text' initrd-files.json)" = \
  "$(cat typical.agent.yaml)" ] || die "the initrd's agent.yaml is not the system's"
jq -e --arg p "$PKG/bin/nixprov-agent" '."boot.initrd.systemd.storePaths" | map(tostring) | any(contains($p))' \
  initrd-files.json >/dev/null || die "the agent is not in the initrd's storePaths: $(cat initrd-files.json)"
ok "initrd: after sysroot.mount, before the switch, no default dependencies; exit 3 continues, others -> emergency.target; agent and agent.yaml in the initrd"

# --- edge settings ------------------------------------------------------------------------------
must_evaluate edge "$D/edge.nix"
agent_yaml edge "$D/edge.agent.json"
[ "$(jq -c '.systemd.services | keys' edge.json)" = '["nixprov-agent"]' ] || die "edge: services $(jq -c '.systemd.services | keys' edge.json)"
[ "$(jq -c '.systemd.timers' edge.json)" = '{}' ] || die "edge: timer.enable = false left a timer"
unit edge '.boot.initrd.systemd.services."nixprov-agent"'
has edge "SuccessExitStatus=2 4 5 6 7 8 9" "OnFailure=emergency.target"
ok "edge: extraConfig merged over the options (deadline, wait), no timer; initrd offline -> emergency, refused -> continue"

must_evaluate schedule "$D/schedule.nix"
unit schedule '.systemd.timers."nixprov-agent"'
has schedule "OnBootSec=2min" "OnCalendar=*-*-* 03:00:00" "RandomizedDelaySec=4h" "Persistent=true"
cp schedule.json schedule-initrd.json
unit schedule-initrd '.boot.initrd.systemd.services."nixprov-agent"'
has schedule-initrd "SuccessExitStatus=3 2 4 5 6 7 8 9"
lacks schedule-initrd "OnFailure="
ok "the timer's schedule and spread are options; initrd continuing in every case has no OnFailure"

cp schedule.json watch.json
unit watch '.systemd.services."nixprov-agent-watch"'
has watch "ExecStart=$PKG/bin/nixprov-agent watch --config /etc/nixprov/agent.yaml --wait 120" \
  "Type=simple" "Restart=always" "RestartSec=10s" "KillMode=process" "X-RestartIfChanged=false" \
  "After=network-online.target nixprov-agent.service" "WantedBy=multi-user.target"
for key in Type Restart RestartSec KillMode After; do
  grep -qxF -- "$(grep "^$key=" "$SRC/systemd/nixprov-agent-watch.service.in")" watch.unit ||
    die "the NixOS watch unit's $key differs from systemd/'s"
done
jq -e '.systemd.services | has("nixprov-agent-watch") | not' typical.json >/dev/null ||
  die "typical: a watch service without watch.enable"
echo "{ imports = [ $D/schedule.nix ]; services.nixprov-agent.watch.wait = 0; }" > "$TMP/bad-wait.nix"
evaluate bad-wait "$TMP/bad-wait.nix"
[ "$rc" -ne 0 ] && grep -q "services.nixprov-agent.watch.wait' is not of type" bad-wait.err ||
  { cat bad-wait.err >&2; die "watch.wait = 0 was accepted"; }
ok "watch.enable: nixprov-agent-watch.service runs watch --wait, Restart=always, as systemd/; off by default; wait 0 refused"

must_evaluate disabled "$D/disabled.nix"
[ "$(jq -c '[.systemd.services, .systemd.timers, .boot.initrd.systemd.services, (.environment.etc | keys)]' disabled.json)" = '[{},{},{},[]]' ] ||
  die "disabled: $(jq -c '[.systemd, .environment.etc]' disabled.json)"
ok "imported but not enabled: no unit, no /etc file"

# --- wrong settings fail with the module system's message ----------------------------------------
n=0
for f in "$D"/fail-*.nix; do
  name=$(basename "$f" .nix)
  evaluate "$name" "$f"
  [ "$rc" -ne 0 ] || die "$name evaluated"
  [ ! -s "$name.json" ] || die "$name: printed a result"
  while IFS= read -r want; do
    grep -qF -- "$want" "$name.err" || { cat "$name.err" >&2; die "$name: no '$want'"; }
  done < <(sed -n 's/^# expect: //p' "$f")
  grep -q '^# expect: ' "$f" || die "$name has no expectation"
  n=$((n + 1))
done
ok "$n wrong settings each fail with NixOS's own error message"

# --- the generated module, for each example profile -------------------------------------------------
expect_exit render 0 env RENDER_OUT="$TMP/out" "$TEST_RENDER"
for example in profile-binary-caches profile-source profile-remote-builders remote-builders; do
  out=$TMP/out/$example
  must_evaluate "gen-$example" "$out/default.nix" "$D/ssh-stub.nix"
  evaluate "gen-ssh-$example" "$out/default.nix" "$D/ssh-stub.nix" --attr programs.ssh.extraConfig
  [ "$rc" -eq 0 ] || { cat "gen-ssh-$example.err" >&2; die "$example: programs.ssh.extraConfig"; }
  j=gen-$example.json
  # /etc/nix/machines is exactly what the agent writes for non-NixOS hosts.
  if [ -s "$out/nixprov-machines" ]; then
    diff -u <(machines_norm <"$out/nixprov-machines") <(jq -j '.nix.machines' "$j" | machines_norm) >&2 ||
      die "$example: machines differ"
    cut -d' ' -f1-5,7- "$out/nixprov-machines" | diff -u - <(jq -j '.nix.machines' "$j" | cut -d' ' -f1-5,7-) >&2 ||
      die "$example: machines differ outside the supported features"
    [ "$(jq '.nix.distributedBuilds' "$j")" = true ] || die "$example: distributedBuilds is not true"
    jq -r '.nix.nixConf' "$j" | grep -qx 'builders = ' && die "$example: NixOS writes 'builders = '"
  else
    [ "$(jq '.nix.machines' "$j")" = null ] || die "$example: machines without builders"
  fi
  # Every nix.conf line of the agent's is NixOS's; a list may have NixOS's defaults added.
  jq -r '.nix.nixConf' "$j" >"nixos-$example.conf"
  while IFS= read -r line; do
    case $line in '#'* | '!include'* | 'builders = @'*) continue ;; esac
    grep -qxF -- "$line" "nixos-$example.conf" && continue
    name=${line%% = *}
    grep -q "^    $name = \[" "$out/default.nix" || die "$example: NixOS's nix.conf lacks '$line'"
    theirs=" $(sed -n "s|^$name = ||p" "nixos-$example.conf") "
    for word in ${line#* = }; do
      case $theirs in *" $word "*) ;; *) die "$example: NixOS's $name lacks $word" ;; esac
    done
  done <"$out/nixprov.conf"
  if grep -q '^!include' "$out/nixprov.conf"; then
    grep -qxF '!include /etc/nix/nixprov-secrets.conf' "nixos-$example.conf" || die "$example: no secrets include"
  fi
  # The ssh aliases: the same Host blocks as /etc/nixprov/ssh_config (after its header).
  diff -u <(tail -n +3 "$out/ssh_config") <(jq -j . "gen-ssh-$example.json") >&2 ||
    die "$example: programs.ssh.extraConfig differs from ssh_config"
done
grep -q "^Host nixprov-builder-1$" "$TMP/out/profile-remote-builders/ssh_config" || die "no alias in the example"
ok "generated module of each example profile: NixOS's /etc/nix/machines and nix.conf match the agent's files, distributedBuilds with builders, ssh aliases kept"

# --- module.nix imports the generated module when it exists ------------------------------------------
cat >imports.nix <<EOF
{
  imports = [ (import $SRC/nixos/with-generated.nix $TMP/out/profile-remote-builders/default.nix) $D/ssh-stub.nix ];
  services.nixprov-agent = { enable = true; package = import $D/package.nix; };
}
EOF
cat >imports-none.nix <<EOF
{
  imports = [ (import $SRC/nixos/with-generated.nix $TMP/none/default.nix) ];
  services.nixprov-agent = { enable = true; package = import $D/package.nix; };
}
EOF
must_evaluate imports "$TMP/imports.nix"
diff -u "$TMP/out/profile-remote-builders/nixprov-machines" <(jq -j .nix.machines imports.json) >&2 || die "the generated module was not imported"
must_evaluate imports-none "$TMP/imports-none.nix"
[ "$(jq .nix.machines imports-none.json)" = null ] || die "imports-none: $(jq .nix imports-none.json)"
grep -qxF 'import ./with-generated.nix /etc/nixos/nixprov/default.nix' "$SRC/nixos/module.nix" || die "module.nix"
ok "module.nix imports /etc/nixos/nixprov/default.nix when it exists, and evaluates without it"

echo "# $checks checks passed"
