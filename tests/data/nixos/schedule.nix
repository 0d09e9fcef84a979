# The timer's schedule and spread; the initrd continuing whatever happens (no OnFailure).
{
  imports = [ ../../../nixos/module.nix ];
  services.nixprov-agent = {
    enable = true;
    package = import ./package.nix;
    timer = { onBootSec = "2min"; onCalendar = "*-*-* 03:00:00"; randomizedDelaySec = "4h"; };
    initrd = { enable = true; onRefused = "continue"; };
  };
}
