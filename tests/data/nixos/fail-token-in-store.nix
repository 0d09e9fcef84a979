# Must fail with the module system's own message:
# expect: - services.nixprov-agent.enrollment.tokenFile must not be in the Nix store: the token is a secret.
{
  imports = [ ../../../nixos/module.nix ];
  services.nixprov-agent = {
    enable = true;
    package = import ./package.nix;
    enrollment.tokenFile = "/nix/store/00000000000000000000000000000000-enroll-token";
  };
}
