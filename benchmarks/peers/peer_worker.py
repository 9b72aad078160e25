"""Worker process in the peers' venv, driven by ``bench_peers.py`` over stdin/stdout (one JSON per line).

Keeping the peers in a long-lived process lets the driver time them in rotation with our engines,
so every ratio comes from the same run under the same machine load. Commands:

    {"cmd": "load", "network": "net.npz", "inputs": "x.npy", "threads": 2}
    {"cmd": "check", "peer": "sinabs", "n": 8, "steps": 100, "tchunk": 25, "out": "counts.npz"}
    {"cmd": "time", "peer": "sinabs", "mode": "batched", "n": 1000, "steps": 100, "batch": 100, "tchunk": 25}
    {"cmd": "time", "peer": "sinabs", "mode": "stream", "n": 5, "steps": 100, "threads": 1}
    {"cmd": "quit"}

Each answer is one JSON line on the original stdout; everything the libraries print goes to stderr.
"""

from __future__ import annotations

import json
import os
import sys
import time

# Answers go to a private copy of stdout; library chatter on stdout is redirected to stderr.
_answers = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_nets  # noqa: E402


def main() -> None:
    nets: dict = {}
    x = None
    default_threads = 2
    for line in sys.stdin:
        req = json.loads(line)
        cmd = req["cmd"]
        try:
            if cmd == "quit":
                break
            if cmd == "load":
                default_threads = int(req.get("threads", 2))
                torch.set_num_threads(default_threads)
                layers = peer_nets.load_network(req["network"])
                peer_nets.check_shapes(layers)
                x = torch.from_numpy(np.load(req["inputs"]))
                nets = {name: cls(layers) for name, cls in peer_nets.PEERS.items()}
                answer = {"ok": True, "versions": peer_nets.versions(), "threads": torch.get_num_threads()}
            elif cmd == "check":
                net, n, steps = nets[req["peer"]], req["n"], req["steps"]
                counts, v_out = net.run_batched(x[:n], steps, req["tchunk"], record=True)
                streamed = np.stack([net.stream(x[j:j + 1], steps) for j in range(n)], axis=1)
                np.savez(req["out"], v_out=v_out, v_out_stream=streamed,
                         **{f"counts{i}": c for i, c in enumerate(counts)})
                answer = {"ok": True}
            elif cmd == "time":
                net, n, steps = nets[req["peer"]], req["n"], req["steps"]
                torch.set_num_threads(int(req.get("threads", default_threads)))
                t0 = time.perf_counter()
                if req["mode"] == "batched":
                    batch = req["batch"]
                    for start in range(0, n, batch):
                        net.run_batched(x[start:start + batch], steps, req["tchunk"])
                else:
                    for j in range(n):
                        net.stream(x[j:j + 1], steps)
                answer = {"ok": True, "seconds": time.perf_counter() - t0}
            else:
                answer = {"ok": False, "error": f"unknown command {cmd!r}"}
        except Exception as exc:  # report to the driver instead of dying silently
            import traceback

            traceback.print_exc()
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        _answers.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
