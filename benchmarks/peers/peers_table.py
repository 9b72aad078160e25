"""Render benchmarks/results/peers.json (from bench_peers.py) as the markdown tables in docs/performance.md.

    .venv/bin/python benchmarks/peers/peers_table.py [benchmarks/results/peers.json]
"""

from __future__ import annotations

import json
import sys


def pct(values) -> str:
    return " / ".join(f"{100 * v:.1f} %" if v < 1 else "100 %" for v in values)


def main(path: str) -> None:
    tables(json.load(open(path)))


def tables(results: dict) -> None:
    """Print the tables of bench_peers.py runs: {name: one run's result (its --json's entry, or its --record's
    numbers)}."""
    order = ("dense", "conv", "dense_torch_1thread", "conv_torch_1thread")
    keys = [k for k in order if k in results] + sorted(k for k in results if k not in order)
    runs = []
    for key in keys:  # label each run by its key in the JSON (workload, or --name)
        runs.append(dict(results[key], workload=key))
    for r in runs:
        print(f"- {r['workload']}: `{r['command']}` — {r['date']}, {r['machine']}, load average "
              f"{r['loadavg_before'][0]} before / {r['loadavg_after'][0]} after, {r['wall_s']:.0f} s; "
              f"{r['images']} images x {r['steps']} steps, batch {r['batch']} (our engine also with its own chunking, "
              f"at most {r['tf_engine_chunk']} per chunk), peers' time chunk {r['tchunk']}, "
              f"batch 1 on {r['stream_images']} images; "
              f"best of {r['rounds']} after a warm-up; torch threads {r['torch_threads']} batched, "
              f"{r.get('stream_torch_threads', 1)} at batch 1")
    v = runs[0]["peer_versions"]
    print(f"- peers: torch {v['torch']}, SpikingJelly {v['spikingjelly']}, sinabs {v['sinabs']}\n")

    print("Equivalence (first images of the MNIST test set; per hidden layer, the fraction of (image, neuron) "
          "spike counts equal to the float64 reference; predictions compared at every step):\n")
    print("| workload | simulator | spike counts equal, per layer | predictions equal (all steps) |")
    print("|---|---|---|---|")
    for r in runs:
        e = r["equivalence"]
        s = e["ours_streaming_vs_reference"]
        print(f"| {r['workload']} ({e['images']} images x {e['steps']} steps) | ours, streaming | "
              f"{pct(s['count_match_per_layer'])} | {pct([s['prediction_match_all_steps']])} |")
        t = e["ours_tf_engine_vs_reference"]
        same = t["total_spikes_per_layer"] == e["reference_spikes_per_layer"]
        print(f"| | ours, TF engine | layer totals {'equal' if same else 'differ'} | "
              f"{pct([t['prediction_match_all_steps']])} |")
        if "ours_numba_engine_vs_reference" in e:
            u = e["ours_numba_engine_vs_reference"]
            totals = "equal" if u["total_spikes_per_layer_match"] else "differ"
            print(f"| | ours, numba engine | layer totals {totals} | "
                  f"{pct([u['prediction_match_all_steps']])} |")
        for p in ("spikingjelly", "sinabs"):
            c = e[p]["batched_vs_reference"]
            print(f"| | {p} | {pct(c['count_match_per_layer'])} | {pct([c['prediction_match_all_steps']])} "
                  f"(batch-1 path: {pct([e[p]['streaming_prediction_match_vs_reference']])}) |")
    print()

    print("Batched, image-timesteps/s (higher is better):\n")
    print("| workload | ours: best engine | SpikingJelly | sinabs | PyTorch roofline | PyTorch roofline, 1 thread "
          "| NumPy roofline | ours / SpikingJelly | ours / sinabs | ours / PyTorch roofline |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        b, q = r["batched_image_steps_per_s"], r["ratios_batched_ours_best_vs"]
        ours = max(v for k, v in b.items() if k.startswith("ours"))
        g = lambda k: f"{b[k]:,.0f}" if k in b else "—"  # noqa: E731
        x = lambda k: f"{q[k]:.2f}×" if k in q else "—"  # noqa: E731
        best = max((v, k) for k, v in b.items() if k.startswith("ours"))[1].replace("ours_", "").replace("_", " ")
        print(f"| {r['workload']} | {ours:,.0f} ({best}) | {g('spikingjelly')} | {g('sinabs')} | "
              f"{g('torch_roofline')} | {g('torch_roofline_1thread')} | {g('numpy_roofline')} | "
              f"{x('spikingjelly')} | {x('sinabs')} | {x('torch_roofline')} |")
    print()

    print("Batch 1 (streaming), timesteps/s:\n")
    print("| workload | ours k=1 | ours k=T | SpikingJelly per step | SpikingJelly whole frame | sinabs per step "
          "| sinabs whole frame | PyTorch roofline | NumPy roofline |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        s, T = r["stream_steps_per_s"], r["steps"]
        g = lambda k: f"{s[k]:,.0f}" if k in s else "not timed"  # noqa: E731
        print(f"| {r['workload']} | {g('ours_streaming_k1')} | {g(f'ours_streaming_k{T}')} | "
              f"{g('spikingjelly_per_step')} | {g('spikingjelly_whole_frame')} | {g('sinabs_per_step')} | "
              f"{g('sinabs_whole_frame')} | {g('torch_roofline_batch1')} | {g('numpy_roofline_batch1')} |")
    print()
    print("| workload | ours k=1 / best peer per step | ours k=T / best peer whole frame |")
    print("|---|---|---|")
    for r in runs:
        s, T = r["stream_steps_per_s"], r["steps"]
        per_step = max((s[k], k) for k in s if k.endswith("_per_step"))
        whole = max((s[k], k) for k in s if k.endswith("_whole_frame"))
        print(f"| {r['workload']} | {s['ours_streaming_k1'] / per_step[0]:.2f}× ({per_step[1]}) | "
              f"{s[f'ours_streaming_k{T}'] / whole[0]:.2f}× ({whole[1]}) |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/peers.json")
