# The nixprov package: both programs, and the systemd units with this package's paths in them.
# For pkgs.callPackage: `pkgs.callPackage ./package.nix { }` (the module's default `package`).
#
# The source is this repository's own tree, filtered to what the build reads: build
# directories, editor files and the tests stay out of the store. The tests are not built
# (NIXPROV_TESTS=OFF): they start real servers and QEMU guests, which a Nix sandbox has not.
{
  lib,
  stdenv,
  cmake,
  pkg-config,
  libsodium,
  libyaml,
  curl,
  libssh,
  libmicrohttpd,
  sqlite,
  jansson,
}:

let
  root = toString ./..;
  # Top-level entries the build reads (CMakeLists.txt names nothing outside them).
  wanted = [ "CMakeLists.txt" "agent" "common" "net" "provisioner" "systemd" ];
  keep =
    path: type:
    let
      rel = builtins.substring (builtins.stringLength root + 1) (-1) (toString path);
      top = builtins.head (builtins.split "/" rel);
    in
    builtins.elem top wanted && builtins.match ".*(~|\\.swp|\\.orig|\\.rej)" rel == null;
in
stdenv.mkDerivation {
  pname = "nixprov";
  version = "0.1.0";

  src = builtins.path {
    path = ./..;
    name = "nixprov-source";
    filter = keep;
  };

  nativeBuildInputs = [ cmake pkg-config ];
  buildInputs = [ libsodium libyaml curl libssh libmicrohttpd sqlite jansson ];

  cmakeFlags = [
    "-DNIXPROV_TESTS=OFF"
    "-DCMAKE_BUILD_TYPE=RelWithDebInfo"
    # NixOS links units from the package's lib/systemd/system (systemd.packages).
    "-DNIXPROV_SYSTEMD_UNIT_DIR=lib/systemd/system"
  ];

  # The agent's clock floor (it never believes a clock earlier than its build) is
  # SOURCE_DATE_EPOCH when set: nixpkgs sets it to 1980 for sources without dates, which makes
  # the floor 1980. For a real floor: overrideAttrs (_: { env.SOURCE_DATE_EPOCH = "..."; }).

  meta = {
    description = "Provisions NixOS machines from a signed profile on their first boot";
    mainProgram = "nixprov-agent";
    license = lib.licenses.mit;
    platforms = [ "x86_64-linux" "aarch64-linux" "i686-linux" "armv7l-linux" "riscv64-linux" ];
  };
}
