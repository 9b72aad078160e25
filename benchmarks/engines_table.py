"""Render benchmarks/results/engines.json (from bench_engines.py) as the markdown tables in docs/performance.md.

    .venv/bin/python benchmarks/engines_table.py benchmarks/results/engines.json
"""

import json
import sys


def main(path: str) -> None:
    table(json.load(open(path)))


def table(r: dict) -> None:
    """Print the tables of one bench_engines.py result (its --json, or the numbers of its --record)."""
    print(f"Run: {r['images']} images x {r['steps']} steps on {r['machine']}; dense model: {r['dense_model']}.\n")
    print("| workload | numba engine | TF engine | plain XLA loop | plain XLA loop with events | dense roofline (BLAS) "
          "| numba / plain loop | numba / TF engine | numba / roofline |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ("dense", "conv"):
        d = r[name]
        print(f"| {name} (image-timesteps/s) | {d['numba_engine_image_steps_per_s']:,.0f} | "
              f"{d['tf_engine_image_steps_per_s']:,.0f} | {d['plain_xla_loop_image_steps_per_s']:,.0f} | "
              f"{d['plain_xla_loop_with_events_image_steps_per_s']:,.0f} | "
              f"{d['dense_roofline_image_steps_per_s']:,.0f} | "
              f"{d['ratio_numba_engine_vs_plain_xla_loop']:.2f}× | {d['ratio_numba_engine_vs_tf_engine']:.2f}× | "
              f"{d['ratio_numba_engine_vs_dense_roofline']:.2f}× |")
    print()
    print("| workload | TF engine / plain loop | TF engine / loop with events | TF engine / roofline |")
    print("|---|---|---|---|")
    for name in ("dense", "conv"):
        d = r[name]
        print(f"| {name} | "
              f"{d['ratio_tf_engine_vs_plain_xla']:.2f}× | "
              f"{d['ratio_tf_engine_vs_plain_xla_with_events']:.2f}× | {d['ratio_tf_engine_vs_roofline']:.2f}× |")
    print()
    print("| workload, batch 1 (timesteps/s) | streaming k=1 | streaming k=10 | streaming k=100 | plain NumPy loop "
          "| k=10 / NumPy loop |")
    print("|---|---|---|---|---|---|")
    for name in ("dense", "conv"):
        d = r[name]
        loop = d.get("numpy_matvec_loop_steps_per_s")
        loop_txt = f"{loop:,.0f}" if loop else "—"
        ratio_txt = f"{d['ratio_streaming_vs_numpy_loop']:.2f}×" if loop else "—"
        print(f"| {name} | {d['streaming_chunk1_steps_per_s']:,.0f} | {d['streaming_chunk10_steps_per_s']:,.0f} | "
              f"{d['streaming_chunk100_steps_per_s']:,.0f} | {loop_txt} | {ratio_txt} |")
    if "memory_tf_engine" in r:
        m, n = r["memory_tf_engine"], r["memory_node_process"]
        print("\nMEMORY\n")
        print("| process | peak RSS |")
        print("|---|---|")
        print(f"| TF engine, {m['images']} images x {m['steps']} steps | {m['max_rss_mb']:.0f} MB |")
        if "memory_numba_engine" in r:
            b = r["memory_numba_engine"]
            print(f"| numba engine, {b['images']} images x {b['steps']} steps | {b['max_rss_mb']:.0f} MB |")
        print(f"| node-like (bundle + streaming engine; imports TensorFlow: {n.get('imports_tensorflow')}) | "
              f"{n.get('max_rss_mb', float('nan')):.0f} MB |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/engines.json")
