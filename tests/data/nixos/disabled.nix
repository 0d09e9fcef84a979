# Imported but not enabled: no unit, no /etc file.
{
  imports = [ ../../../nixos/module.nix ];
  services.nixprov-agent.package = import ./package.nix;
}
