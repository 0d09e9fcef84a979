# Every option away from its default: no timer, the initrd failing closed when offline and
# continuing when refused, extraConfig merged over the options.
{
  imports = [ ../../../nixos/module.nix ];
  services.nixprov-agent = {
    enable = true;
    package = import ./package.nix;
    servers = [ "file:///run/media/profiles" ];
    trustedKeys = [ "RWSD43coa+5OoiQlNYklthXAnK9p5Jl9tXMEhTU91t7O4mYLg9cix558" ];
    groups = [ "edge" "lab.v2" ];
    connectTimeout = 600;
    deadline = 86400;
    caFile = "/etc/nixprov/ca.pem";
    stateDir = "/persist/nixprov";
    logDir = "/persist/log/nixprov";
    enrollment = { tokenFile = "/etc/nixprov/enroll-token"; wait = 0; };
    rebuild = { command = "/run/current-system/sw/bin/nixos-rebuild"; path = "/run/current-system/sw/bin:/run/wrappers/bin"; };
    timer.enable = false;
    extraConfig = { server.deadline = 1800; enroll.wait = 60; };
    initrd = { enable = true; onOffline = "emergency"; onRefused = "continue"; };
  };
}
