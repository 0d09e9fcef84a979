# A stand-in for a NixOS system, without nixpkgs, for the health and rollback tests: a store path
# with kernel, initrd and bin/switch-to-configuration. Switching to it stops the listener of the
# system before it (pid file ROOT/run/nixprov-test-listener.pid) and starts its own: a real
# HTTP server on 127.0.0.1:PORT whose page names this system's nonce. broken = true makes the
# listener fail at start (the "service" of this system no longer starts); the switch itself
# succeeds, as a NixOS switch does when a unit fails.
{ nonce, port, root, broken ? false, kernel ? "kernel-1" }:
builtins.derivation {
  name = "nixprov-system-${nonce}";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  PATH = "/usr/bin:/bin";
  inherit nonce port root kernel;
  broken = if broken then "1" else "";
  args = [ "-c" ''
    set -e
    mkdir -p $out/bin $out/www
    echo "$kernel" > $out/kernel
    echo "initrd of $kernel" > $out/initrd
    echo "system $nonce" > $out/www/index.html
    cat > $out/bin/switch-to-configuration <<SCRIPT
    #!/bin/sh
    # switch-to-configuration ACTION (switch, test, boot, dry-activate)
    set -e
    PATH=/usr/bin:/bin
    pidfile=$root/run/nixprov-test-listener.pid
    case "\$1" in
      switch|test) ;;
      *) exit 0 ;;
    esac
    mkdir -p $root/run
    if [ -s "\$pidfile" ]; then
      old=\$(cat "\$pidfile")
      kill "\$old" 2>/dev/null || true
      for i in \$(seq 100); do kill -0 "\$old" 2>/dev/null || break; sleep 0.05; done
      rm -f "\$pidfile"
    fi
    echo "$out" > $root/run/nixprov-test-current
    if [ -n "$broken" ]; then
      echo "nixprov-test-listener.service: failed to start (system $nonce is broken)" >&2
      setsid -f python3 -c 'import sys; sys.exit(1)' </dev/null >/dev/null 2>&1
      exit 0
    fi
    setsid -f sh -c 'echo \$\$ > '"\$pidfile"'; exec python3 -m http.server --bind 127.0.0.1 --directory $out/www $port' </dev/null >>$root/run/nixprov-test-listener.log 2>&1
    for i in \$(seq 100); do [ -s "\$pidfile" ] && break; sleep 0.05; done
    echo "started the listener of system $nonce on 127.0.0.1:$port"
    SCRIPT
    chmod +x $out/bin/switch-to-configuration
  '' ];
}
