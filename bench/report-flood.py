#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""One device floods nixprov serve, another reports as usual (issue 10's case).

  python3 bench/report-flood.py BUILD_DIR [FLOOD_REPORTS [SIZE]] [-- SERVE_OPTIONS...]

Starts the real nixprov serve on 127.0.0.1 (a port it picks, a scratch data directory) with the
default quotas (more options of serve after --, e.g. -- --pending-rate 1000000), enrolls a pending device P and a device B approved by the policy, then:
  1. idle: B sends 50 reports, one after the other; their median latency;
  2. flood: P sends FLOOD_REPORTS (default 1000) reports of SIZE bytes (default 261000) from
     two threads while a third asks GET /v1/machines/P (the largest page) in a loop, and B sends
     50 reports again; their median latency;
  3. the server's peak RSS (VmHWM from /proc/PID/status) after start-up and at the end, and what
     P's history holds.
B's reports are signed in advance, so its latency is the server's alone. Prints the command.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import flood  # noqa: E402

P = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
B = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"


def vmhwm(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return line.split(":", 1)[1].strip()
    return "?"


def timed_reports(client, bodies):
    latencies = []
    for body in bodies:
        start = time.perf_counter()
        status, answer = client.request("POST", "/v1/reports", body)
        latencies.append(time.perf_counter() - start)
        if status != 200:
            raise SystemExit(f"B's report: HTTP {status}: {answer[:200]!r}")
    return latencies


def start_server(bindir, tmp, options):
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    for name, text in (("default.yaml", "profile: default\n"), ("default.yaml.minisig", "x\n")):
        with open(os.path.join(data, name), "w") as f:
            f.write(text)
    policy = os.path.join(tmp, "policy.yaml")
    with open(policy, "w") as f:
        f.write(f"approve:\n  machine-ids: [{B}]\n")
    port_file = os.path.join(tmp, "port")
    log = open(os.path.join(tmp, "server.log"), "w")
    server = subprocess.Popen([os.path.join(bindir, "nixprov"), "serve", "--listen", "127.0.0.1:0",
                               "--data", data, "--port-file", port_file, "--enroll-policy", policy]
                              + options,
                              stdout=log, stderr=log)
    for _ in range(200):
        if os.path.exists(port_file) and open(port_file).read().strip():
            return server, int(open(port_file).read())
        time.sleep(0.05)
    server.kill()
    raise SystemExit("nixprov serve did not start")


def operator(tmp):
    """The Authorization header of the operator endpoints: serve's default token file."""
    with open(os.path.join(tmp, "data", "operator.token")) as f:
        return {"Authorization": "Bearer " + f.read().strip()}


def flood_phase(port, tool, tmp, n_reports, size, stop, answers):
    def flooder(first, count):
        flood.post_reports(flood.Client(port), tool, os.path.join(tmp, "p"), P, first, count, size,
                           answers)

    def reader():
        client = flood.Client(port)
        while not stop.is_set():
            client.request("GET", f"/v1/machines/{P}?limit=1000", extra_headers=operator(tmp))

    half = n_reports // 2
    threads = [threading.Thread(target=flooder, args=(1, half)),
               threading.Thread(target=flooder, args=(half + 1, n_reports - half)),
               threading.Thread(target=reader)]
    for t in threads:
        t.start()
    return threads


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    bindir = os.path.join(argv[1], "bin")
    tool = os.path.join(argv[1], "tests", "device-sign")
    n_reports = int(argv[2]) if len(argv) > 2 else 1000
    size = int(argv[3]) if len(argv) > 3 else 261000
    serve_options = argv[argv.index("--") + 1:] if "--" in argv else []
    if "--" in argv:
        argv = argv[:argv.index("--")]
    print("command: python3 " + " ".join(sys.argv))
    tmp = tempfile.mkdtemp(prefix="nixprov-bench-flood.")
    server = None
    try:
        server, port = start_server(bindir, tmp, serve_options)
        for dev in ("p", "b"):
            os.makedirs(os.path.join(tmp, dev))
        client = flood.Client(port)
        for dev, machine in (("p", P), ("b", B)):
            status, _ = client.request("POST", "/v1/enroll", flood.enrollment(
                tool, os.path.join(tmp, dev), machine, "bench-" + dev))
            assert status == 200
        b_reports = [flood.report(tool, os.path.join(tmp, "b"), B, seq) for seq in range(1, 101)]
        hwm_start = vmhwm(server.pid)

        idle = timed_reports(client, b_reports[:50])
        stop = threading.Event()
        answers = {}
        threads = flood_phase(port, tool, tmp, n_reports, size, stop, answers)
        time.sleep(1.0)  # the flood under way
        busy = timed_reports(client, b_reports[50:])
        for t in threads[:2]:
            t.join()
        stop.set()
        threads[2].join()
        status, body = client.request("GET", f"/v1/machines/{P}?limit=1000",
                                      extra_headers=operator(tmp))
        history = json.loads(body)
        hwm_end = vmhwm(server.pid)

        idle_ms, busy_ms = statistics.median(idle) * 1000, statistics.median(busy) * 1000
        print(f"B's report, median of 50, idle server:          {idle_ms:.2f} ms")
        print(f"B's report, median of 50, while P floods:       {busy_ms:.2f} ms "
              f"({busy_ms / idle_ms:.2f}x idle)")
        print(f"P sent {n_reports} reports of {size} bytes: {answers.get(200, 0)} answered 200, "
              f"{answers.get(429, 0)} 429 (--pending-rate); its history holds "
              f"{history['reports_total']}, {history['reports_trimmed']} trimmed")
        print(f"server peak RSS (VmHWM): {hwm_start} after start-up, {hwm_end} at the end")
    finally:
        if server:
            server.terminate()
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
