# Must fail with the module system's own message:
# expect: error: A definition for option `services.nixprov-agent.groups."[definition 1-entry 1]"' is not of type `string matching the pattern [a-z0-9][a-z0-9._-]{0,63}'.
{
  imports = [ ../../../nixos/module.nix ];
  services.nixprov-agent = {
    enable = true;
    package = import ./package.nix;
    groups = [ "Edge" ];
  };
}
