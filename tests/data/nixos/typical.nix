# What a fleet's image sets: a server, the fleet key, a group, the initrd stage with its defaults.
{
  imports = [ ../../../nixos/module.nix ];
  services.nixprov-agent = {
    enable = true;
    package = import ./package.nix;
    servers = [ "https://prov.example.org" "https://mirror.example.org" ];
    trustedKeys = [ "RWSD43coa+5OoiQlNYklthXAnK9p5Jl9tXMEhTU91t7O4mYLg9cix558" ];
    groups = [ "edge" ];
    initrd.enable = true;
  };
}
