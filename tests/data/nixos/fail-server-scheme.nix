# Must fail with the module system's own message:
# expect: error: A definition for option `services.nixprov-agent.servers."[definition 1-entry 1]"' is not of type `string matching the pattern (https?|file)://[[:graph:]]+'.
{
  imports = [ ../../../nixos/module.nix ];
  services.nixprov-agent = {
    enable = true;
    package = import ./package.nix;
    servers = [ "ftp://prov.example.org" ];
  };
}
