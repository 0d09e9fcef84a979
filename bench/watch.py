#!/usr/bin/env python3
"""Long-poll on loopback, with the real programs:

  latency   `nixprov-agent watch` running on one device (a rebuild command that does nothing):
            from publishing a new signed profile (its .minisig, then the profile, moved into
            the served directory) to the device's final report ("done", that serial) stored by
            `nixprov serve`, over N publishes (the server's history is polled every 5 ms)
  idle      the server's cost of W clients each holding a `?wait=` request (If-None-Match with
            the current ETag) open: RSS and threads from /proc/PID/status, and the CPU time the
            server spends (utime + stime, /proc/PID/stat) over S seconds of idle waiting, next
            to the same server with no client

The clients connect from 127.0.0.2 ... so that the server's 64 connections per address are not
the limit (all of 127.0.0.0/8 is loopback).

Usage: bench/watch.py [--publishes N] [--waiters W] [--idle S] [--build DIR]
       (default: 20 publishes, 1000 waiters, 30 s, build/)
"""
import argparse, json, os, resource, shutil, socket, statistics, subprocess, sys, tempfile, time
import urllib.error, urllib.request

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYS = os.path.join(SRC, "tests", "data", "keys")
MACHINE = "4c4c4544004d3510804fb4c04f4d3732"
OPERATOR = {}  # the Authorization header of the operator endpoints, once serve made its token


def operator_headers(tmp):
    """serve's default operator token is DATA/operator.token (beside its database)."""
    if not OPERATOR:
        with open(os.path.join(tmp, "data", "operator.token")) as f:
            OPERATOR["Authorization"] = "Bearer " + f.read().strip()
    return OPERATOR


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=30) as r:
        return r.read(), dict(r.headers)


def publish(tmp, serial):
    stage = os.path.join(tmp, "stage.yaml")
    with open(stage, "w") as f:
        f.write("nixprov: 1\nserial: %d\nexpires: 2099-01-01T00:00:00Z\nmachines: [%s]\n"
                "strategy: binary-caches\nnix:\n  settings:\n    substituters: []\n" % (serial, MACHINE))
    subprocess.run(["minisign", "-S", "-s", os.path.join(KEYS, "fleet.sec"), "-m", stage,
                    "-t", "serial %d" % serial], check=True, stdout=subprocess.DEVNULL)
    dest = os.path.join(tmp, "data", "machines", MACHINE + ".yaml")
    t = time.monotonic()
    os.rename(stage + ".minisig", dest + ".minisig")
    os.rename(stage, dest)
    return t


def done_serials(base):
    try:
        body, _ = get("%s/v1/machines/%s?limit=1000" % (base, MACHINE), OPERATOR)
    except urllib.error.HTTPError:  # 404 until the device has enrolled
        return set()
    return {r.get("serial") for r in json.loads(body)["reports"] if r["phase"] == "done" and r["status"] == "ok"}


def proc_status(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return {"rss_kib": int(fields["VmRSS"].split()[0]), "threads": int(fields["Threads"]),
            "cpu_s": (int(stat[11]) + int(stat[12])) / ticks}


def idle_cost(pid, seconds):
    before = proc_status(pid)
    time.sleep(seconds)
    after = proc_status(pid)
    return after["rss_kib"], after["threads"], after["cpu_s"] - before["cpu_s"]


def start_server(args, tmp):
    policy = os.path.join(tmp, "policy.yaml")
    with open(policy, "w") as f:
        f.write("approve:\n  machine-ids: [%s]\n" % MACHINE)
    port_file = os.path.join(tmp, "port")
    cmd = [os.path.join(args.build, "bin", "nixprov"), "serve", "--listen", "127.0.0.1:0", "--data",
           os.path.join(tmp, "data"), "--port-file", port_file, "--enroll-policy", policy,
           "--max-waiters", str(max(1024, args.waiters + 16))]
    print("$ " + " ".join(cmd))
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "server.log"), "w"))
    for _ in range(200):
        if os.path.exists(port_file) and open(port_file).read().strip():
            break
        time.sleep(0.05)
    return server, "http://127.0.0.1:%s" % open(port_file).read().strip()


def latency(args, tmp, base):
    root = os.path.join(tmp, "root")
    os.makedirs(os.path.join(root, "etc"))
    with open(os.path.join(root, "etc", "machine-id"), "w") as f:
        f.write(MACHINE + "\n")
    rebuild = os.path.join(tmp, "rebuild")
    with open(rebuild, "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(rebuild, 0o755)
    pub = open(os.path.join(KEYS, "fleet.pub")).read().splitlines()[-1]
    config = os.path.join(tmp, "agent.yaml")
    with open(config, "w") as f:
        f.write("server: {urls: [%s], deadline: 30, connect-timeout: 2}\ntrusted-keys: [%s]\n"
                "rebuild: {command: %s}\nenroll: {wait: 0}\n" % (base, pub, rebuild))
    cmd = [os.path.join(args.build, "bin", "nixprov-agent"), "watch", "--config", config, "--root", root,
           "--cmdline", "-", "--wait", "300"]
    print("$ " + " ".join(cmd))
    watch = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "watch.log"), "w"))
    times = []
    try:
        publish(tmp, 1)
        for serial in range(1, args.publishes + 2):
            if serial > 1:
                t0 = publish(tmp, serial)
            while serial not in done_serials(base):
                time.sleep(0.005)
            if serial > 1:
                times.append((time.monotonic() - t0) * 1000)
            time.sleep(0.3)  # the next request is held again
    finally:
        watch.terminate()
        watch.wait()
    return times


def device_proof(args, tmp, target):
    """The device's X-Nixprov-Proof for GET target (the server checks it when a request comes)."""
    tool = os.path.join(args.build, "tests", "device-sign")
    state = os.path.join(tmp, "root", "var", "lib", "nixprov")
    return subprocess.run([tool, state, "--proof", "GET", target, MACHINE, str(int(time.time()))],
                          check=True, capture_output=True, text=True).stdout.strip()


def hold_waiters(args, tmp, base, n):
    target = "/v1/machines/%s/profile" % MACHINE
    proof = device_proof(args, tmp, target)
    _, headers = get(base + target, {"X-Nixprov-Proof": proof})
    etag = headers["ETag"]
    port = int(base.rsplit(":", 1)[1])
    request = ("GET %s?wait=3600 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "If-None-Match: %s\r\nX-Nixprov-Proof: %s\r\n\r\n" % (target, etag, proof)).encode()
    socks = []
    for i in range(n):
        s = socket.socket()
        s.bind(("127.0.0.%d" % (2 + i // 50), 0))
        s.connect(("127.0.0.1", port))
        s.sendall(request)
        socks.append(s)
    return socks


def waiters_now(base):
    body, _ = get(base + "/metrics", OPERATOR)
    for line in body.decode().splitlines():
        if line.startswith("nixprov_profile_waiters "):
            return int(line.split()[1])
    return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--publishes", type=int, default=20)
    ap.add_argument("--waiters", type=int, default=1000)
    ap.add_argument("--idle", type=float, default=30)
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tmp = tempfile.mkdtemp(prefix="nixprov-bench-watch.")
    os.makedirs(os.path.join(tmp, "data", "machines"))
    server, base = start_server(args, tmp)
    operator_headers(tmp)
    try:
        times = latency(args, tmp, base)
        times.sort()
        p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
        print("publish -> final report, %d publishes: median %.0f ms, p99 %.0f ms, min %.0f ms, max %.0f ms"
              % (len(times), statistics.median(times), p99, times[0], times[-1]))
        rss0, threads0, cpu0 = idle_cost(server.pid, args.idle)
        print("server, no client, %.0f s idle: RSS %.1f MiB, %d threads, CPU %.3f s"
              % (args.idle, rss0 / 1024, threads0, cpu0))
        socks = hold_waiters(args, tmp, base, args.waiters)
        while waiters_now(base) < args.waiters:
            time.sleep(0.1)
        rss, threads, cpu = idle_cost(server.pid, args.idle)
        held = waiters_now(base)
        print("server, %d waiting clients (nixprov_profile_waiters %d), %.0f s idle: RSS %.1f MiB "
              "(+%.1f KiB per waiter), %d threads, CPU %.3f s"
              % (args.waiters, held, args.idle, rss / 1024, (rss - rss0) / args.waiters, threads, cpu))
        for s in socks:
            s.close()
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
