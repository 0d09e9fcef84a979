# A stand-in for the nixprov package: the kit builds nothing, a derivation-shaped set will do.
{
  type = "derivation";
  name = "nixprov-0.1.0";
  outPath = "/nix/store/00000000000000000000000000000000-nixprov-0.1.0";
}
