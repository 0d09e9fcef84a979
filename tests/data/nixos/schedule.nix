# The timer's schedule and spread; the initrd continuing whatever happens (no OnFailure); the
# watch service with a shorter wait.
{
  imports = [ ../../../nixos/module.nix ];
  services.nixprov-agent = {
    enable = true;
    package = import ./package.nix;
    timer = { onBootSec = "2min"; onCalendar = "*-*-* 03:00:00"; randomizedDelaySec = "4h"; };
    initrd = { enable = true; onRefused = "continue"; };
    watch = { enable = true; wait = 120; };
  };
}
