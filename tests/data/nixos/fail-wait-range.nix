# Must fail with the module system's own message:
# expect: error: A definition for option `services.nixprov-agent.enrollment.wait' is not of type `integer between 0 and 604800 (both inclusive)'.
{
  imports = [ ../../../nixos/module.nix ];
  services.nixprov-agent = {
    enable = true;
    package = import ./package.nix;
    enrollment.wait = 604801;
  };
}
