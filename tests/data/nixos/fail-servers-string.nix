# Must fail with the module system's own message:
# expect: error: A definition for option `services.nixprov-agent.servers' is not of type `list of string matching the pattern (https?|file)://[[:graph:]]+'.
{
  imports = [ ../../../nixos/module.nix ];
  services.nixprov-agent = {
    enable = true;
    package = import ./package.nix;
    servers = "https://prov.example.org";
  };
}
