#!/usr/bin/env bash
# The real Nix accepts what render.c writes: the unit test test-render renders its examples (and
# the example profiles of configs/profiles/) into RENDER_OUT, and this script hands each file to Debian's nix (2.8, single-user as root):
#   nixprov.conf      as NIX_CONF_DIR/nix.conf: nix show-config succeeds without a warning and
#                     shows every value; the secrets "!include" is skipped while the file is
#                     missing and read once it exists
#   NIX_CONFIG text   the same values through the environment
#   default.nix       parses; evaluated with a stub lib, its settings rendered the way NixOS
#                     renders nix.conf equal our nix.conf lines, with the right Nix types, and
#                     its nix.buildMachines rendered the way NixOS renders /etc/nix/machines
#                     equal our machines file; a hostile string survives escaping unchanged
#   machines file     parsed by Nix's build hook (nix-build --max-jobs 0), which lists every
#                     builder with the systems, jobs and features we wrote
# No Nix call here reaches the network: show-config opens no store, every other call sets
# substituters to empty, and the machines check points the builders at 127.0.0.1.
source "$(dirname "$0")/lib.sh"

TEST_RENDER=${TEST_RENDER:-$BIN/../tests/test-render}
[ -x "$TEST_RENDER" ] || die "no $TEST_RENDER: build the test-render target first"
command -v nix >/dev/null || die "nix is not installed (Debian: nix-bin)"

export HOME=$TMP/home XDG_CACHE_HOME=$TMP/home/.cache
mkdir -p "$HOME"
unset NIX_PATH NIX_CONF_DIR NIX_CONFIG
OFFLINE=$'substituters =\nbuild-users-group =\nsandbox = false\nextra-experimental-features = nix-command'

expect_exit render 0 env RENDER_OUT="$TMP/out" "$TEST_RENDER"
ok "test-render renders its examples into RENDER_OUT"

# nix_show DIR NIX_CONFIG: nix show-config with DIR/nix.conf; stderr must stay empty (an unknown
# setting is only a warning there). No substituters override: we want to see ours, and
# show-config opens no store.
nix_show() {
  NIX_CONF_DIR=$1 NIX_CONFIG=$2 nix show-config >show.out 2>show.err ||
    { cat show.err >&2; die "nix show-config failed"; }
  [ ! -s show.err ] || { cat show.err >&2; die "nix show-config warned"; }
}

# expect_settings FILE: every "name = value" line of FILE (but extra-*) is in show.out as is.
expect_settings() {
  local line
  while IFS= read -r line; do
    # extra-* is merged into its setting; Nix shows max-jobs = auto as the CPU count.
    case $line in '#'* | '!include'* | extra-* | 'max-jobs = auto') continue ;; esac
    grep -qxF -- "$line" show.out || die "nix show-config lacks '$line'"
  done <"$1"
}

EXAMPLES="remote-builders source profile-binary-caches profile-source profile-remote-builders"
for example in $EXAMPLES; do
  out=$TMP/out/$example
  mkdir -p "conf-$example"
  cp "$out/nixprov.conf" "conf-$example/nix.conf"
  nix_show "$TMP/conf-$example" 'extra-experimental-features = nix-command'
  expect_settings "$out/nixprov.conf"
  if [ "$example" = remote-builders ]; then
    grep -qx 'experimental-features = .*flakes.*' show.out ||
      die "extra-experimental-features was not applied"
  fi
  ok "$example: nix show-config reads nixprov.conf, no warning, every value as written"

  nix_show "$TMP/home" "$(cat "$out/nix-config")"$'\nextra-experimental-features = nix-command'
  expect_settings "$out/nix-config"
  ok "$example: the NIX_CONFIG text gives the same values"
done

# The include: skipped while missing (above), read once present.
out=$TMP/out/remote-builders
grep -qx '!include /etc/nix/nixprov-secrets.conf' "$out/nixprov.conf" || die "no secrets include"
mkdir -p conf-secrets
sed "s|^!include /etc/nix/nixprov-secrets.conf\$|!include $TMP/secrets.conf|" \
  "$out/nixprov.conf" >conf-secrets/nix.conf
printf 'netrc-file = %s/netrc\n' "$TMP" >secrets.conf
nix_show "$TMP/conf-secrets" 'extra-experimental-features = nix-command'
grep -qxF "netrc-file = $TMP/netrc" show.out || die "the secrets include was not read"
ok "the secrets !include is skipped while the file is missing and read when present"

# nix_eval EXPR: nix eval --raw, offline, in the current directory.
nix_eval() {
  NIX_CONFIG=$OFFLINE nix eval --impure --raw --expr "$1" >eval.out 2>eval.err ||
    { cat eval.err >&2; die "nix eval failed: $1"; }
}

# NixOS's own renderings, minus nixpkgs: nix.conf (nixos/modules/config/nix.nix: attributes in
# name order, lists joined with spaces) and the machines file (nix-remote-build.nix). One
# deliberate difference: NixOS writes supportedFeatures ++ mandatoryFeatures in the sixth
# field, we write the supported features as given (Nix accepts a mandatory feature either way).
cat >nixos.nix <<'EOF'
dir:
let
  module = import (dir + "/default.nix") { lib = { mkDefault = x: x; }; };
  settings = module.nix.settings;
  value = v:
    if builtins.isBool v then (if v then "true" else "false")
    else if builtins.isList v then builtins.concatStringsSep " " v
    else toString v;
  list = l: if l == [ ] then "-" else builtins.concatStringsSep "," l;
  machine = m: builtins.concatStringsSep " " [
    "${m.protocol}://${if m ? sshUser then "${m.sshUser}@" else ""}${m.hostName}"
    (list m.systems) (m.sshKey or "-") (toString m.maxJobs) (toString m.speedFactor)
    (list m.supportedFeatures) (list m.mandatoryFeatures) m.publicHostKey
  ];
in {
  conf = builtins.concatStringsSep "" (map (n: "${n} = ${value settings.${n}}\n")
    (builtins.attrNames settings));
  machines = builtins.concatStringsSep "" (map (m: machine m + "\n") (module.nix.buildMachines or [ ]));
  types = builtins.concatStringsSep "" (map (n: "${n} ${builtins.typeOf settings.${n}}\n")
    (builtins.attrNames settings));
  extraOptions = module.nix.extraOptions or "";
  distributedBuilds = if module.nix.distributedBuilds or false then "true" else "false";
}
EOF

for example in $EXAMPLES escape; do
  out=$TMP/out/$example
  NIX_CONFIG=$OFFLINE nix-instantiate --parse "$out/default.nix" >/dev/null 2>parse.err ||
    { cat parse.err >&2; die "$example: default.nix does not parse"; }
done
ok "every default.nix parses (nix-instantiate --parse)"

for example in $EXAMPLES; do
  out=$TMP/out/$example
  nix_eval "(import ./nixos.nix $out).conf"
  grep -v '^builders = ' "$out/nix-config" | LC_ALL=C sort >expected-conf
  diff -u expected-conf eval.out >&2 || die "$example: NixOS would write another nix.conf"
  nix_eval "(import ./nixos.nix $out).machines"
  diff -u "$out/nixprov-machines" eval.out >&2 ||
    die "$example: NixOS would write another machines file"
done
ok "the module's settings and buildMachines, rendered as NixOS does, equal nixprov.conf and the machines file"

nix_eval "(import ./nixos.nix $TMP/out/remote-builders).types"
cat >expected-types <<'EOF'
builders-use-substitutes bool
connect-timeout int
cores int
extra-experimental-features list
fallback bool
keep-derivations bool
keep-outputs bool
max-jobs int
stalled-download-timeout int
substituters list
trusted-public-keys list
trusted-users list
EOF
diff -u expected-types eval.out >&2 || die "wrong Nix types in nix.settings"
nix_eval "(import ./nixos.nix $TMP/out/remote-builders).extraOptions"
[ "$(cat eval.out)" = "!include /etc/nix/nixprov-secrets.conf" ] || die "wrong nix.extraOptions"
nix_eval "(import ./nixos.nix $TMP/out/remote-builders).distributedBuilds"
[ "$(cat eval.out)" = true ] || die "nix.distributedBuilds is not true"
nix_eval "(import $TMP/out/escape/default.nix { lib.mkDefault = x: x; }).nix.settings.max-jobs"
[ "$(cat eval.out)" = auto ] || die "max-jobs = auto is not the string auto"
ok "Nix types: booleans, integers, lists; max-jobs auto a string; extraOptions and distributedBuilds"

nix_eval "let v = (import $TMP/out/escape/default.nix { lib.mkDefault = x: x; }).nix.settings.post-build-hook; in if v == builtins.readFile $TMP/out/escape/value then \"same\" else v"
[ "$(cat eval.out)" = same ] || die "escaping changed the value: $(cat eval.out)"
ok "a value with \", \\, \${ and \$\${ evaluates back to itself"

# The machines file as Nix's build hook reads it. Only the URIs' hosts are changed (to
# 127.0.0.1, where nothing answers): every other field is ours. Nix lists the machines it
# parsed, then gives up without building; a field it cannot parse is "bad machine specification".
out=$TMP/out/remote-builders
while read -r uri rest; do
  printf '%s %s\n' "$(sed -E 's#^(ssh(-ng)?://).*#\1nobody@127.0.0.1#' <<<"$uri")" "$rest"
done <"$out/nixprov-machines" >machines
run hook env NIX_CONFIG="$OFFLINE"$'\nmax-jobs = 0\nbuilders = @'"$TMP/machines" \
  timeout 120 nix-build --no-out-link -E 'derivation { name = "nixprov-render-probe";
    system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; }'
[ "$rc" -ne 0 ] || die "the probe derivation was built, locally or remotely"
if grep -q 'bad machine specification' hook.out; then cat hook.out >&2; die "Nix refused the machines file"; fi
expect_grep hook "2 available machines:"
expect_grep hook "(x86_64-linux, aarch64-linux, 8, benchmark, big-parallel, kvm, nixos-test, )"
expect_grep hook "(x86_64-linux, 1, , big-parallel)"
ok "Nix's build hook parses the machines file: both builders, their systems, jobs and features"

echo "# $checks checks passed"
