# The NixOS module of nixprov: add it to imports in configuration.nix, e.g.
#
#   imports = [ /path/to/nixprov/nixos/module.nix ];
#   services.nixprov-agent = { enable = true; servers = [ ... ]; trustedKeys = [ ... ]; };
#
# It declares services.nixprov-agent (agent.nix), and imports the module the agent writes from
# the applied profile, /etc/nixos/nixprov/default.nix, when that exists, so that every later
# rebuild keeps the profile's Nix settings, builders and ssh aliases.
import ./with-generated.nix /etc/nixos/nixprov/default.nix
