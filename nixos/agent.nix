# services.nixprov-agent: runs nixprov-agent on every boot and periodically, with the agent's
# configuration (/etc/nixprov/agent.yaml) made from these options; optionally also in the
# initrd (systemd stage 1), against the mounted root, before the switch to it.
#
# The agent configuration has the schema of configs/agent.yaml (common/agent_config.c): the
# options below are its keys, extraConfig is merged over them (recursively) for keys this module
# does not name. The profile the agent applies decides everything else (caches, builders, the
# rebuild's action and flake); that is signed by the fleet, not set here.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkEnableOption mkIf types literalExpression optionalString;
  cfg = config.services.nixprov-agent;

  absolutePath = types.strMatching "/[^[:cntrl:]]*";
  url = types.strMatching "(https?|file)://[[:graph:]]+";
  groupName = types.strMatching "[a-z0-9][a-z0-9._-]{0,63}";

  agentConfig = lib.recursiveUpdate ({
    server = {
      urls = cfg.servers;
      connect-timeout = cfg.connectTimeout;
      deadline = cfg.deadline;
    } // lib.optionalAttrs (cfg.caFile != null) { ca-file = cfg.caFile; };
    trusted-keys = cfg.trustedKeys;
    groups = cfg.groups;
    state-dir = cfg.stateDir;
    log-dir = cfg.logDir;
    rebuild = {
      command = cfg.rebuild.command;
      path = cfg.rebuild.path;
    };
    enroll = {
      wait = cfg.enrollment.wait;
    } // lib.optionalAttrs (cfg.enrollment.tokenFile != null) {
      token-file = cfg.enrollment.tokenFile;
    };
  }) cfg.extraConfig;

  # JSON is YAML: the agent's strict parser reads it (no anchors, tags or aliases in it).
  agentYaml = builtins.toJSON agentConfig + "\n";

  agent = "${cfg.package}/bin/nixprov-agent";
  configFlag = "--config /etc/nixprov/agent.yaml";

  # Exit codes (nixprov-agent's README): 3 the server could not be reached; 2 4 6 9 10 11 refusals
  # that a retry does not change; 5 7 8 passing faults, retried like 3.
  refusedCodes = [ 2 4 6 9 10 11 ];
  # Stage 1: every failure but 3 is a refusal (onRefused); 3 is onOffline.
  initrdRefusedCodes = [ 2 4 5 6 7 8 9 ];
  initrdContinueCodes =
    lib.optional (cfg.initrd.onOffline == "continue") 3
    ++ lib.optionals (cfg.initrd.onRefused == "continue") initrdRefusedCodes;
  initrdEmergency = cfg.initrd.onOffline == "emergency" || cfg.initrd.onRefused == "emergency";
  codes = l: lib.concatMapStringsSep " " toString l;
in
{
  options.services.nixprov-agent = {
    enable = mkEnableOption "nixprov-agent, which provisions this machine from its signed profile";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./package.nix { }";
      description = "The nixprov package (its bin/nixprov-agent is run): by default built from this repository's nixos/package.nix.";
    };

    servers = mkOption {
      type = types.listOf url;
      default = [ ];
      example = [ "https://prov.example.org" "https://mirror.example.org" ];
      description = ''
        The provisioning server and its mirrors, tried in order (server.urls). May be empty when
        the kernel command line gives nixprov.url=.
      '';
    };

    connectTimeout = mkOption {
      type = types.ints.between 1 600;
      default = 10;
      description = "Seconds per connection attempt (server.connect-timeout).";
    };

    deadline = mkOption {
      type = types.ints.between 1 86400;
      default = 900;
      description = "Seconds for the whole fetch with its retries (server.deadline).";
    };

    caFile = mkOption {
      type = types.nullOr absolutePath;
      default = null;
      description = "Pins the server's CA (server.ca-file); null: the system CA store.";
    };

    trustedKeys = mkOption {
      type = types.listOf types.singleLineStr;
      default = [ ];
      example = [ "RWSD43coa+5OoiQlNYklthXAnK9p5Jl9tXMEhTU91t7O4mYLg9cix558" ];
      description = ''
        The minisign public keys whose signatures are accepted: base64 key lines, or absolute
        paths of .pub files (trusted-keys). List two during a key rotation.
      '';
    };

    groups = mkOption {
      type = types.listOf groupName;
      default = [ ];
      example = [ "edge" ];
      description = "The fleet groups this machine is in (groups).";
    };

    stateDir = mkOption {
      type = absolutePath;
      default = "/var/lib/nixprov";
      description = "Device keys, the applied serial, spooled reports (state-dir).";
    };

    logDir = mkOption {
      type = absolutePath;
      default = "/var/log/nixprov";
      description = "The rebuild logs (log-dir).";
    };

    enrollment = {
      tokenFile = mkOption {
        type = types.nullOr absolutePath;
        default = null;
        example = "/etc/nixprov/enroll-token";
        description = ''
          The enrollment token baked into the image (enroll.token-file): a path as a string,
          mode 0600, root's, put there outside the Nix store (a Nix path would be copied into
          the world-readable store).
        '';
      };
      wait = mkOption {
        type = types.ints.between 0 604800;
        default = 3600;
        description = "Seconds to wait for an operator's approval (enroll.wait); 0 asks once.";
      };
    };

    rebuild = {
      command = mkOption {
        type = types.strMatching "[^[:space:]]+";
        default = "nixos-rebuild";
        description = ''
          Run as COMMAND ACTION [--flake REF] --log-format internal-json (rebuild.command); the
          action and the flake are the signed profile's (rebuild.action, rebuild.flake).
        '';
      };
      path = mkOption {
        type = types.strMatching "/[^:[:cntrl:]]*(:/[^:[:cntrl:]]*)*";
        default = "/run/current-system/sw/bin";
        description = "The rebuild's PATH (rebuild.path).";
      };
    };

    timer = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Run the agent again periodically (nixprov-agent-update.service), so newer profiles are applied.";
      };
      onBootSec = mkOption {
        type = types.singleLineStr;
        default = "15min";
        description = "The first later run, after boot (OnBootSec=).";
      };
      onCalendar = mkOption {
        type = types.singleLineStr;
        default = "hourly";
        description = "When to run again (OnCalendar=; Persistent=true catches up a missed run).";
      };
      randomizedDelaySec = mkOption {
        type = types.singleLineStr;
        default = "30min";
        description = "Spreads a fleet's runs (RandomizedDelaySec=).";
      };
    };

    watch = {
      enable = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Also run `nixprov-agent watch` (nixprov-agent-watch.service, Restart=always): one
          long-poll kept open at the server, so a newly published profile is applied within
          about a second, from behind NAT, with no port open on the machine.
        '';
      };
      wait = mkOption {
        type = types.ints.between 1 3600;
        default = 300;
        description = "How long one request waits at the server, in seconds (watch --wait).";
      };
    };

    extraConfig = mkOption {
      type = types.attrsOf types.anything;
      default = { };
      example = { server.deadline = 1800; };
      description = ''
        Merged (recursively) over the agent configuration made from the options above, in the
        schema of configs/agent.yaml; the agent refuses unknown keys.
      '';
    };

    initrd = {
      enable = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Also run the agent in the initrd (systemd stage 1, boot.initrd.systemd.enable):
          `nixprov-agent run --root /sysroot --no-rebuild` after the root is mounted, so the
          first boot of the real system already has the Nix settings, keys and tokens; the
          stage-2 service builds.
        '';
      };
      onOffline = mkOption {
        type = types.enum [ "continue" "emergency" ];
        default = "continue";
        description = ''
          Exit 3 (server unreachable, no network): continue booting (stage 2 retries), or stop
          in the emergency shell.
        '';
      };
      onRefused = mkOption {
        type = types.enum [ "emergency" "continue" ];
        default = "emergency";
        description = ''
          Any other failure (profile refused 4, not admitted 9, configuration 2, write 5,
          builders 6, report 8): stop in the emergency shell (fail closed), or continue booting.
        '';
      };
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.enrollment.tokenFile == null || !lib.hasPrefix builtins.storeDir cfg.enrollment.tokenFile;
        message = "services.nixprov-agent.enrollment.tokenFile must not be in the Nix store: the token is a secret.";
      }
    ];

    environment.etc."nixprov/agent.yaml".text = agentYaml;

    systemd.services = {
      nixprov-agent = {
      description = "nixprov-agent: provision this machine from its signed profile";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      # The agent runs nixos-rebuild switch itself: a switch must not restart or stop it.
      restartIfChanged = false;
      unitConfig = {
        X-StopOnRemoval = false;
        StartLimitIntervalSec = "1h";
        StartLimitBurst = 6;
      };
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = "${agent} run ${configFlag}";
        Restart = "on-failure";
        RestartSec = "60s";
        RestartPreventExitStatus = codes refusedCodes;
        KillMode = "process";
        TimeoutStartSec = "infinity";
      };
    };
    }
    # optionalAttrs, not mkIf, for the units that may be absent: a unit name defined under a
    # false mkIf still shows in the definitions (the eval kit lists it, then finds no unit).
    // lib.optionalAttrs cfg.timer.enable { nixprov-agent-update = {
      description = "nixprov-agent: apply a newer profile";
      wants = [ "network-online.target" ];
      after = [ "network-online.target" "nixprov-agent.service" ];
      restartIfChanged = false;
      unitConfig.X-StopOnRemoval = false;
      serviceConfig = {
        Type = "oneshot";
        ExecStart = "${agent} run ${configFlag}";
        KillMode = "process";
        TimeoutStartSec = "infinity";
      };
    }; }
    // lib.optionalAttrs cfg.watch.enable { nixprov-agent-watch = {
      description = "nixprov-agent: apply new profiles as they are published";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" "nixprov-agent.service" ];
      # It runs nixos-rebuild switch itself: a switch must not restart or stop it.
      restartIfChanged = false;
      unitConfig.X-StopOnRemoval = false;
      serviceConfig = {
        Type = "simple";
        ExecStart = "${agent} watch ${configFlag} --wait ${toString cfg.watch.wait}";
        Restart = "always";
        RestartSec = "10s";
        KillMode = "process";
      };
    }; };

    systemd.timers = lib.optionalAttrs cfg.timer.enable { nixprov-agent = {
      wantedBy = [ "timers.target" ];
      timerConfig = {
        Unit = "nixprov-agent-update.service";
        OnBootSec = cfg.timer.onBootSec;
        OnCalendar = cfg.timer.onCalendar;
        RandomizedDelaySec = cfg.timer.randomizedDelaySec;
        Persistent = true;
      };
    }; };

    boot.initrd.systemd.contents = mkIf cfg.initrd.enable {
      "/etc/nixprov/agent.yaml".text = agentYaml;
    };
    boot.initrd.systemd.storePaths = mkIf cfg.initrd.enable [ agent ];
    boot.initrd.systemd.services = lib.optionalAttrs cfg.initrd.enable { nixprov-agent = {
      description = "nixprov-agent: provision the root before switching to it";
      wantedBy = [ "initrd.target" ];
      requires = [ "sysroot.mount" ];
      wants = [ "network-online.target" ];
      after = [ "sysroot.mount" "network-online.target" ];
      before = [ "initrd-switch-root.target" "initrd-nixos-activation.service" ];
      unitConfig = {
        DefaultDependencies = false;
        ConditionPathExists = "/etc/initrd-release";
      } // lib.optionalAttrs initrdEmergency {
        OnFailure = "emergency.target";
        OnFailureJobMode = "replace-irreversibly";
      };
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = "${agent} run --root /sysroot --no-rebuild ${configFlag}";
      } // lib.optionalAttrs (initrdContinueCodes != [ ]) {
        SuccessExitStatus = codes initrdContinueCodes;
      };
    }; };
  };
}
