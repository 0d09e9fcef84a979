# Test-only: programs.ssh.extraConfig, which the kit does not declare, with upstream's type
# (nixos/modules/programs/ssh.nix: types.lines, default "").
{ lib, ... }:
{
  options.programs.ssh.extraConfig = lib.mkOption {
    type = lib.types.lines;
    default = "";
  };
}
