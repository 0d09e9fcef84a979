# Must fail with the module system's own message:
# expect: error: A definition for option `services.nixprov-agent.initrd.onOffline' is not of type `one of "continue", "emergency"'.
{
  imports = [ ../../../nixos/module.nix ];
  services.nixprov-agent = {
    enable = true;
    package = import ./package.nix;
    initrd.onOffline = "retry";
  };
}
