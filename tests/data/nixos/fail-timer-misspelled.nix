# Must fail with the module system's own message:
# expect: error: The option `services.nixprov-agent.timer.onCalender' does not exist.
{
  imports = [ ../../../nixos/module.nix ];
  services.nixprov-agent = {
    enable = true;
    package = import ./package.nix;
    timer.onCalender = "daily";
  };
}
