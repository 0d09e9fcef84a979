#!/usr/bin/env bash
# nixos/package.nix, the expression pkgs.callPackage takes, built by the real nix-build. There is
# no nixpkgs here, so its arguments are stand-ins: stdenv.mkDerivation becomes a plain
# derivation whose builder does what nixpkgs' cmake setup hook does (configure with the
# package's cmakeFlags and CMAKE_INSTALL_PREFIX=$out, build, install) with this machine's cmake,
# compiler and libraries. What is checked is the expression's own part: the arguments it takes,
# the source it copies to the store (only what the build reads), its flags, and that the result
# has both programs and units whose ExecStart is the package's own binary.
. "$(dirname "$0")/lib.sh"

command -v nix-build >/dev/null || { echo "SKIP: no nix-build"; exit 77; }
command -v cmake >/dev/null || { echo "SKIP: no cmake"; exit 77; }
export HOME=$TMP/home
mkdir -p "$HOME"

cat >"$TMP/stand-in.nix" <<'NIX'
{ package }:
let
  f = import package;
  stubs = {
    lib.licenses.mit = { spdxId = "MIT"; };
    stdenv.mkDerivation = a: (derivation {
      name = "${a.pname}-${a.version}";
      system = builtins.currentSystem;
      builder = "/bin/sh";
      inherit (a) src;
      cmakeFlags = a.cmakeFlags;
      args = [ "-ec" ''
        export PATH=/usr/bin:/bin
        cmake -S "$src" -B "$TMPDIR/build" $cmakeFlags -DCMAKE_INSTALL_PREFIX="$out" >/dev/null
        cmake --build "$TMPDIR/build" -j2 >/dev/null
        cmake --install "$TMPDIR/build" >/dev/null
      '' ];
    }) // { passthru = a; };
  };
  # Every other argument (the libraries, cmake, pkg-config) by name, as callPackage would.
  others = builtins.mapAttrs (name: _: "stand-in-${name}") (builtins.functionArgs f);
in
f (others // stubs)
NIX

# capture CMD...: CMD's stdout in $out; its failure fails the test.
capture() { out=$("$@" 2>"$TMP/capture.err") || { cat "$TMP/capture.err" >&2; die "failed: $*"; }; }

expr="import $TMP/stand-in.nix { package = $SRC/nixos/package.nix; }"
# What callPackage will be asked for.
capture nixcall nix-instantiate --eval --strict --json -E \
  "builtins.attrNames (builtins.functionArgs (import $SRC/nixos/package.nix))"
want='["cmake","curl","jansson","lib","libmicrohttpd","libsodium","libssh","libyaml","pkg-config","sqlite","stdenv"]'
[ "$(jq -c sort <<<"$out")" = "$want" ] || die "arguments: $out"
ok "callPackage arguments: $(jq -r 'join(" ")' <<<"$want")"

capture nixcall nix-instantiate --eval --strict --json -E \
  "let p = ($expr).passthru; in { inherit (p) pname version cmakeFlags; inherit (p.meta) mainProgram; license = p.meta.license.spdxId; }"
[ "$(jq -r .mainProgram <<<"$out")" = nixprov-agent ] || die "meta.mainProgram: $out"
[ "$(jq -r .license <<<"$out")" = MIT ] || die "meta.license: $out"
jq -e '.cmakeFlags | index("-DNIXPROV_TESTS=OFF")' <<<"$out" >/dev/null || die "cmakeFlags: $out"
ok "pname $(jq -r .pname <<<"$out") $(jq -r .version <<<"$out"), tests off, meta set"

# The source in the store: only the top-level entries the build reads.
capture nixcall nix-instantiate --eval --read-write-mode --json -E "\"\${($expr).src}\""
source=$(jq -r . <<<"$out")
[ "$(cd "$source" && ls -A | tr '\n' ' ')" = "CMakeLists.txt agent common net provisioner systemd " ] ||
  die "the source holds: $(ls -A "$source" | tr '\n' ' ')"
[ -f "$source/agent/main.c" ] && [ ! -e "$source/tests" ] && [ ! -e "$source/build" ] ||
  die "the source filter"
ok "the source in the store holds only CMakeLists.txt agent common net provisioner systemd"

# The build, with the real nix-build (minutes on a loaded machine: its own timeout).
NIX_CONFIG="$HOST_NIX
substituters =" timeout 900 nix-build --no-out-link -E "$expr" >"$TMP/out-path" 2>"$TMP/build.err" ||
  { tail -n 30 "$TMP/build.err" >&2; die "nix-build of the package failed"; }
pkg=$(cat "$TMP/out-path")
[ -x "$pkg/bin/nixprov-agent" ] && [ -x "$pkg/bin/nixprov" ] || die "no programs in $pkg/bin"
capture "$pkg/bin/nixprov-agent" --version
[[ $out == *0.1.0* ]] || die "nixprov-agent --version: $out"
ok "nix-build: $pkg/bin has nixprov and nixprov-agent ($out)"

for unit in nixprov-agent.service nixprov-agent-update.service nixprov-agent.timer; do
  [ -f "$pkg/lib/systemd/system/$unit" ] || die "no $unit in $pkg/lib/systemd/system"
done
grep -qxF "ExecStart=$pkg/bin/nixprov-agent run" "$pkg/lib/systemd/system/nixprov-agent.service" ||
  { grep -n ExecStart "$pkg/lib/systemd/system/nixprov-agent.service" >&2; die "ExecStart is not the package's binary"; }
ok "the units are in lib/systemd/system and run $pkg/bin/nixprov-agent"
