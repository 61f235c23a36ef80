"""Measure the lab's frame rate: state updates per second while it trains.

    python -m tinygan.tools.lab_fps                 # 10 s, ring, default settings
    python -m tinygan.tools.lab_fps --seconds 20 --both --speed 1000

Starts a lab server in this process (as ``tinygan lab`` does, one BLAS thread), presses play,
and polls ``GET /api/state`` over HTTP one request after another, as the page does (the page
also waits POLL_MS = 60 ms between a frame drawn and its next request; ``--wait-ms`` does the
same here). Prints the requests answered per second, the new frames per second (answers whose
training step changed), the training steps per second and the mean and 95th-percentile time of
one answer. Numbers depend on the machine and on what else runs on it.
"""

import http.client
import json
import statistics
import sys
import threading
import time

from .cli import Parser, non_negative_int, positive_float, positive_int
from .lab import serve
from .threads import blas_threads


def measure(seconds=10.0, both=False, speed=None, wait_ms=60, dataset="ring"):
    """Returns a dict of the figures (see the module docstring)."""
    settings = {"dataset": dataset}
    if speed is not None:
        settings["speed"] = speed
    server = serve("127.0.0.1", 0, settings=settings)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    port = server.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(method, path):
        conn.request(method, path, body=b"{}" if method == "POST" else None,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"{path}: {r.status} {body[:200]!r}")
        return json.loads(body)
    try:
        request("POST", "/api/start")
        time.sleep(0.5)                                  # let the loop settle
        times, steps = [], []
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            t = time.perf_counter()
            s = request("GET", f"/api/state?both={int(both)}")
            times.append(time.perf_counter() - t)
            steps.append(s["step"])
            if wait_ms:
                time.sleep(wait_ms / 1000)
        elapsed = time.perf_counter() - start
        request("POST", "/api/pause")
    finally:
        conn.close()
        server.close()
    new = sum(1 for a, b in zip(steps, steps[1:]) if b != a)
    times.sort()
    return {"seconds": elapsed, "requests_per_s": len(times) / elapsed,
            "frames_per_s": new / elapsed, "steps_per_s": (steps[-1] - steps[0]) / elapsed,
            "mean_ms": 1000 * statistics.fmean(times),
            "p95_ms": 1000 * times[int(0.95 * (len(times) - 1))]}


def main(argv=None):
    p = Parser(prog="python -m tinygan.tools.lab_fps",
               description="Measure tinygan lab's state updates per second while it trains.")
    p.add_argument("--seconds", type=positive_float, default=10.0, help="how long to poll")
    p.add_argument("--both", action="store_true", help="ask for both objectives' arrows")
    p.add_argument("--speed", type=positive_int, default=None,
                   help="the lab's training speed cap, steps/s (default: the lab's)")
    p.add_argument("--wait-ms", type=non_negative_int, default=60,
                   help="pause between an answer and the next request (the page's: 60)")
    p.add_argument("--dataset", choices=("ring", "grid", "gauss1d"), default="ring")
    args = p.parse_args(argv)
    with blas_threads(1):
        r = measure(args.seconds, args.both, args.speed, args.wait_ms, args.dataset)
    print(f"{r['requests_per_s']:.1f} state answers/s, {r['frames_per_s']:.1f} new frames/s, "
          f"{r['steps_per_s']:.0f} training steps/s; one answer {r['mean_ms']:.1f} ms mean, "
          f"{r['p95_ms']:.1f} ms p95 ({r['seconds']:.1f} s, wait {args.wait_ms} ms, "
          f"both={args.both}, {args.dataset})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
