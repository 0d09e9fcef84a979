#!/usr/bin/env python3
"""The agent's own overhead on loopback, for a profile with 4 caches (one private, with a sealed
token) and 3 builders, over many first boots (each a new machine, a new root directory):

  phases    fetch + verify + plan + write, as the agent times them (last-run.json)
  process   the whole `nixprov-agent run --no-rebuild` process, also identify, spooling the
            reports and delivering them to a real `nixprov serve`, and exit

with the peak RSS of the agent process (GNU time). Every machine gets its own profile, its token
sealed to that machine's box key (made beforehand by `nixprov-agent id`, not timed; the run
loads the keys and opens the token, in plan). Also next to `minisign -V` on the same profile
(one signature check in a process of its own) and bench/curl-floor.c (a program that does
nothing but one libcurl GET on loopback: the memory floor of this machine's libcurl).

Usage: bench/agent-overhead.py [--runs N] [--build DIR]      (default: 200 runs, build/)
"""
import argparse, base64, json, os, shutil, signal, socket, statistics, struct, subprocess, sys, tempfile, time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MACHINE = "4c4c4544004d3510804fb4c04f4d3732"


def host_key():
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + os.urandom(32)
    return "ssh-ed25519 " + base64.b64encode(blob).decode()


def cache_key(name):
    return "%s.cachix.org-1:%s" % (name, base64.b64encode(os.urandom(32)).decode())


def closed_ports(n):
    """n distinct ports on 127.0.0.1 that nothing listens on (bound together, then released)."""
    socks = [socket.socket() for _ in range(n)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


def profile_text(sealed):
    # The builders phase probes each builder: on loopback ports nothing listens on, they are
    # refused at once (never a name to resolve, nothing outside this machine), left in the
    # machines file (required: false), and the run goes on building locally.
    builders = "".join(
        "  - uri: ssh://nix@127.0.0.1:%d\n"
        "    systems: [x86_64-linux, aarch64-linux]\n"
        "    max-jobs: 8\n"
        "    speed-factor: 2\n"
        "    supported-features: [big-parallel, kvm, nixos-test]\n"
        "    host-key: %s\n"
        "    required: false\n" % (port, host_key()) for port in closed_ports(3))
    caches = "".join("  - name: %s\n    public-key: %s\n" % (n, cache_key(n))
                     for n in ("nix-community", "devenv", "cuda-maintainers"))
    caches += "  - name: myorg\n    public-key: %s\n    auth-token: {sealed: %s}\n" % (cache_key("myorg"), sealed)
    return ("nixprov: 1\nserial: 7\nexpires: 2099-01-01T00:00:00Z\ngroups: [bench]\n"
            "strategy: remote-builders\nnix:\n  fallback-local: true\n  settings:\n    max-jobs: fit\n    cores: fit\n"
            "    connect-timeout: 10\nbuilders:\n%scachix:\n%s"
            "rebuild:\n  action: switch\n  timeout: 7200\n" % (builders, caches))


def measure(argv, rss_file):
    """Runs argv under GNU time (a small parent, so the peak RSS is the program's own, not a
    forked Python's); returns (wall seconds, peak RSS KiB)."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-o", rss_file, "-f", "%M"] + argv,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit("%s failed (%d):\n%s" % (" ".join(argv), proc.returncode,
                                          proc.stderr.decode(errors="replace")))
    return wall, int(open(rss_file).read().split()[-1])


def summary(name, walls, rss):
    walls = sorted(w * 1000 for w in walls)
    p90 = walls[int(len(walls) * 0.9) - 1]
    print("%-38s median %6.2f ms   p90 %6.2f ms   max %6.2f ms   peak RSS %6.2f MiB" %
          (name, statistics.median(walls), p90, walls[-1], max(rss) / 1024))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    args = ap.parse_args()
    bindir = os.path.join(args.build, "bin")
    keys = os.path.join(SRC, "tests", "data", "keys")
    tmp = tempfile.mkdtemp(prefix="nixprov-bench.")
    server = None
    try:
        data = os.path.join(tmp, "data")
        os.makedirs(os.path.join(data, "groups"))
        os.makedirs(os.path.join(data, "machines"))
        token = base64.urlsafe_b64encode(os.urandom(60)).decode().rstrip("=")

        def machine_profile(root, machine_id):
            """Makes the machine's keys, seals the token to it, signs its own profile."""
            out = subprocess.run([os.path.join(bindir, "nixprov-agent"), "id", "--json", "--config", config,
                                  "--root", root], check=True, stdout=subprocess.PIPE).stdout
            box = json.loads(out)["box_public_key"]
            sealed = subprocess.run([os.path.join(bindir, "nixprov"), "seal", "--to", box],
                                    input=token.encode(), check=True, stdout=subprocess.PIPE).stdout
            sealed = sealed.decode().strip()[len("{sealed: "):-1]
            path = os.path.join(data, "machines", machine_id + ".yaml")
            with open(path, "w") as f:
                f.write(profile_text(sealed))
            subprocess.run([os.path.join(bindir, "nixprov"), "sign", "-s", os.path.join(keys, "fleet.sec"), path],
                           check=True, stdout=subprocess.DEVNULL)
            return path

        # Every machine is approved by the enrollment token baked into its image.
        enroll_token = os.urandom(32).hex() + "\n"
        token_file = os.path.join(tmp, "enroll-token")
        with open(os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(enroll_token)
        policy = os.path.join(tmp, "enroll-policy.yaml")
        with open(policy, "w") as f:
            f.write("approve:\n  token-files: [%s]\n" % token_file)

        port_file = os.path.join(tmp, "port")
        server = subprocess.Popen([os.path.join(bindir, "nixprov"), "serve", "--listen", "127.0.0.1:0",
                                   "--data", data, "--port-file", port_file, "--enroll-policy", policy],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.05)
        port = open(port_file).read().strip()

        pub = open(os.path.join(keys, "fleet.pub")).read().splitlines()[1]
        config = os.path.join(tmp, "agent.yaml")
        with open(config, "w") as f:
            f.write("server:\n  urls: [http://127.0.0.1:%s]\ntrusted-keys: [%s]\ngroups: [bench]\n"
                    "enroll:\n  token-file: /etc/nixprov/enroll-token\n  wait: 0\n" % (port, pub))

        agent = [os.path.join(bindir, "nixprov-agent"), "run", "--config", config, "--cmdline", "-",
                 "--no-rebuild", "--root"]
        rss_file = os.path.join(tmp, "rss")
        phases, walls, rss = [], [], []
        for i in range(args.runs):
            root = os.path.join(tmp, "root-%d" % i)
            # What a NixOS root has before its first boot: /etc/nix, /etc/nixos, /root, /var/lib.
            for d in ("etc/nix", "etc/nixos", "etc/nixprov", "root", "var/lib", "var/log"):
                os.makedirs(os.path.join(root, d))
            fd = os.open(os.path.join(root, "etc", "nixprov", "enroll-token"),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, enroll_token.encode())
            os.close(fd)
            machine_id = os.urandom(16).hex()  # a new machine every time
            with open(os.path.join(root, "etc", "machine-id"), "w") as f:
                f.write(machine_id + "\n")
            prof = machine_profile(root, machine_id)
            os.sync()  # the agent's one syncfs() should not pay for the files made just now
            if i == 0:
                subprocess.run([os.path.join(bindir, "nixprov"), "check", "--quiet", prof], check=True)
            w, r = measure(agent + [root], rss_file)
            last = json.load(open(os.path.join(root, "var", "lib", "nixprov", "last-run.json")))
            t = last["timings_us"]
            phases.append(sum(t[p] for p in ("fetch", "verify", "plan", "write")) / 1e6)
            walls.append(w)
            rss.append(r)
            shutil.rmtree(root)

        mwalls, mrss = [], []
        for _ in range(args.runs):
            w, r = measure(["minisign", "-Vq", "-p", os.path.join(keys, "fleet.pub"), "-m", prof],
                           rss_file)
            mwalls.append(w)
            mrss.append(r)

        floor = os.path.join(tmp, "curl-floor")
        subprocess.run(["cc", "-O2", "-o", floor, os.path.join(SRC, "bench", "curl-floor.c"), "-lcurl"],
                       check=True)
        cwalls, crss = [], []
        for _ in range(args.runs):
            w, r = measure([floor, "http://127.0.0.1:%s/healthz" % port], rss_file)
            cwalls.append(w)
            crss.append(r)

        print("profile: 4 caches (one private, sealed token), 3 builders; %d runs each; loopback"
              % args.runs)
        summary("agent: fetch+verify+plan+write", phases, rss)
        summary("agent: whole process", walls, rss)
        summary("minisign -V (one signature check)", mwalls, mrss)
        summary("one libcurl GET (bench/curl-floor.c)", cwalls, crss)
    finally:
        if server:
            server.send_signal(signal.SIGTERM)
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
