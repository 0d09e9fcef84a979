#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A device that talks to nixprov serve on 127.0.0.1 as fast as it can: its enrollment and its
reports, signed with tests/tools/device-sign (the agent's own keys and signer), over one
keep-alive connection. Used by test-quotas.sh and bench/report-flood.py.

  flood.py enroll SIGN DEV PORT MACHINE HOSTNAME      prints the state the server answered
  flood.py reports SIGN DEV PORT MACHINE FIRST COUNT SIZE
                                                      posts reports FIRST..FIRST+COUNT-1, each
                                                      padded to about SIZE bytes; prints how
                                                      many were answered 200
  flood.py answers SIGN DEV PORT MACHINE FIRST COUNT SIZE
                                                      the same, whatever the answers: prints
                                                      {"200": N, "429": N, "429 body": "..."}
"""
import http.client
import json
import subprocess
import sys
import time


def sign(tool, dev, context, obj):
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    return subprocess.run([tool, dev, context], input=body, stdout=subprocess.PIPE,
                          check=True).stdout


def keys(tool, dev):
    out = subprocess.run([tool, dev, "--keys"], stdout=subprocess.PIPE, check=True).stdout
    return out.decode().split()


def enrollment(tool, dev, machine, hostname):
    sign_key, box_key = keys(tool, dev)
    return sign(tool, dev, "nixprov-enroll-v1", {
        "machine_id": machine, "hostname": hostname, "macs": ["02:00:00:00:00:01"],
        "system": "x86_64-linux", "cpus": 2, "memory": 4294967296, "sign_key": sign_key,
        "box_key": box_key, "time": int(time.time())})


def report(tool, dev, machine, seq, size=0, message=None):
    obj = {"machine_id": machine, "seq": seq, "phase": "fetch", "status": "progress",
           "time": 1800000000}
    if message is not None:
        obj["message"] = message
    elif size > 0:
        obj["message"] = "x" * max(0, size - 200)
    return sign(tool, dev, "nixprov-report-v1", obj)


class Client:
    """One keep-alive connection to 127.0.0.1:port."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def request(self, method, path, body=None, extra_headers=None):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        headers.update(extra_headers or {})
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                answer = self.conn.getresponse()
                return answer.status, answer.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")


def post_reports(client, tool, dev, machine, first, count, size, answers=None):
    """Posts the reports; returns how many were answered 200. Any other status ends it, unless
    answers (a dict) is given: then it counts each status and keeps the last body of each."""
    stored = 0
    for seq in range(first, first + count):
        status, body = client.request("POST", "/v1/reports", report(tool, dev, machine, seq, size))
        if answers is not None:
            answers[status] = answers.get(status, 0) + 1
            answers[f"{status} body"] = body
        elif status != 200:
            raise SystemExit(f"report {seq}: HTTP {status}: {body[:200]!r}")
        stored += status == 200
    return stored


def main(argv):
    if len(argv) >= 7 and argv[1] == "enroll":
        tool, dev, port, machine, hostname = argv[2:7]
        status, body = Client(int(port)).request("POST", "/v1/enroll",
                                                 enrollment(tool, dev, machine, hostname))
        if status != 200:
            raise SystemExit(f"enroll: HTTP {status}: {body[:200]!r}")
        print(json.loads(body)["state"])
        return 0
    if len(argv) == 9 and argv[1] == "reports":
        tool, dev, port, machine = argv[2:6]
        first, count, size = int(argv[6]), int(argv[7]), int(argv[8])
        print(post_reports(Client(int(port)), tool, dev, machine, first, count, size))
        return 0
    if len(argv) == 9 and argv[1] == "answers":
        tool, dev, port, machine = argv[2:6]
        answers = {}
        post_reports(Client(int(port)), tool, dev, machine, int(argv[6]), int(argv[7]),
                     int(argv[8]), answers)
        print(json.dumps({str(k): v.decode() if isinstance(v, bytes) else v
                          for k, v in answers.items()}))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
