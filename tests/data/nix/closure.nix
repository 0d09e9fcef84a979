# A tiny closure without nixpkgs, for tests with the real Nix: c depends on a and b, b on a.
# A new nonce makes new store paths; fail = true makes c's builder exit 1.
{ nonce ? "x", fail ? false }:
let
  mk = name: deps: extra: builtins.derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    args = [ "-c" "echo ${nonce} ${name} > $out; for d in ${toString deps}; do echo $d >> $out; cat $d >> $out; done${extra}" ];
  };
  a = mk "nixprov-demo-a" [] "";
  b = mk "nixprov-demo-b" [ a ] "";
in mk "nixprov-demo-c" [ a b ] (if fail then "; echo 'nixprov-demo-c: deliberate failure' >&2; exit 1" else "")
