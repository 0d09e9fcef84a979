# module.nix with the generated module's path as a parameter (the tests give another one):
# imports agent.nix, and the generated module when the file exists.
generated: {
  imports = [ ./agent.nix ] ++ (if builtins.pathExists generated then [ generated ] else [ ]);
}
