# Must fail with the module system's own message:
# expect: error: A definition for option `services.nixprov-agent.stateDir' is not of type `string matching the pattern /[^[:cntrl:]]*'.
{
  imports = [ ../../../nixos/module.nix ];
  services.nixprov-agent = {
    enable = true;
    package = import ./package.nix;
    stateDir = "var/lib/nixprov";
  };
}
