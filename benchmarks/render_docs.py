"""Render the measured tables in README.md and docs/*.md from the committed records in results/.

A rendered block in a doc names a template and the records it is made from:

    <!-- rendered: node_latency results/node_latency_idle.json results/node_latency_hogs2.json -->
    (generated: do not edit by hand)
    <!-- /rendered -->

    .venv/bin/python benchmarks/render_docs.py            # rewrite every block from its records
    .venv/bin/python benchmarks/render_docs.py --check    # exit 1 and print a diff where a doc differs
    .venv/bin/python benchmarks/render_docs.py --unrecorded   # lines stating a measured number outside a block

Each block ends with where its numbers come from: the record, its command, commit, date, machine and the load
average before -> after. A number in a doc outside a rendered block is either in docs/unrecorded.txt (the list
of claims still to be re-measured into a record) or tests/test_docs_records.py fails.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- rendered: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- /rendered -->)", re.S)
ALLOWLIST = ROOT / "docs" / "unrecorded.txt"

# A measured number: digits with a unit of time, rate, size or a ratio/percentage (not a dimension like 28×28).
MEASURED = re.compile(
    r"(?<![\w.])\d[\d,]*(?:\.\d+)?\s?"
    r"(?:ms|µs|us|s|min|minutes|h|hours|%|pp|steps/s|images/s|timesteps/s|MB|GB|KB|MiB|GiB|fps|Hz|×(?!\d)|x(?!\w))"
    r"(?![\w/])")


def docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def load(path: str) -> dict:
    return json.loads((ROOT / path).read_text())


# ---- formatting helpers ----------------------------------------------------------------------------------------

def steps_to(times: dict) -> str:
    """Timesteps to each accuracy level ({"0.9": 8, "0.99": None, ...}), levels ascending: "8 / never"."""
    return " / ".join("never" if times[k] is None else str(times[k]) for k in sorted(times, key=float))


def pct(x: float) -> str:
    """A fraction as a percentage: 1.0 -> 100, 0.9912 -> 99.1."""
    v = 100 * x
    return "100" if round(v, 1) == 100 else f"{v:.1f}"


def ms(x: float) -> str:
    return f"{float(x):.2f}"


def _other_code(parts: dict) -> str:
    """Which cached stages of a resumed run ran at other code than the record's commit (None: unknown)."""
    known = {name: codes for name, codes in parts.items() if codes is not None}
    commits = sorted({(c["commit"] or "unknown")[:7] + (" + changes" if c["diff_sha256"] else "")
                      for codes in known.values() for c in codes})
    said = [f"{len(known)} stage(s) made at {', '.join(commits)}"] if known else []
    if len(known) < len(parts):
        said.append(f"{len(parts) - len(known)} stage(s) from before stages recorded their code")
    return "; ".join(said)


def provenance(records: list[tuple[str, dict]]) -> str:
    lines = []
    for path, r in records:
        m = r.get("machine", {})
        model = r.get("model")
        model_txt = f", model `{model['path']}` ({model['manifest_sha256'][:8]})" if model else ""
        dirty = " + uncommitted changes" if r.get("uncommitted_changes") else ""
        if r.get("code_changed_during_run"):
            dirty += f" (code changed during the run, ending at {r['commit_at_end'][:7]})"
        if r.get("parts_at_other_code"):
            dirty += f" ({_other_code(r['parts_at_other_code'])})"
        before, after = r["load_average_before"][0], r["load_average_after"][0]
        date = r["date"][:16].replace("T", " ")
        lines.append(f"- `{path}`: `{r['command']}` — commit {r['commit'][:7]}{dirty}, {date} UTC, "
                     f"{m.get('cores')} cores ({m.get('cpu')}), load average {before:.1f} → {after:.1f}, "
                     f"{r['wall_seconds']:.0f} s{model_txt}")
    return "Records:\n\n" + "\n".join(lines)


# ---- templates -------------------------------------------------------------------------------------------------

def _run_label(n: dict) -> str:
    parts = [f"{n['hogs']} busy-loop hogs" if n.get("hogs") else "idle"]
    for p in n.get("params", []):
        key, _, value = p.partition("=")
        parts.append(f"node `{key}: {value}`")
    if n.get("client_priority"):
        parts.append(f"client SCHED_FIFO {n['client_priority']}")
    return ", ".join(parts)


def _budgets(n: dict) -> list[str]:
    return sorted(n["per_budget"], key=lambda b: float(b.removesuffix("ms")))


def node_latency(records: list[tuple[str, dict]]) -> str:
    """Deadline queries at the client (benchmarks/node_latency.py): one row per record."""
    out = ["| run (record) | queries | on time, all | per budget: on time % (accuracy %) | answered `infeasible` "
           "| `deadline_met` agrees | computed past the deadline | late answers (of them sent without computing) |",
           "|---|---|---|---|---|---|---|---|"]
    for path, r in records:
        n = r["numbers"]
        budgets = _budgets(n)
        per = " / ".join(f"{pct(n['per_budget'][b]['on_time'])} ({pct(n['per_budget'][b]['accuracy'])})"
                         for b in budgets)
        names = " / ".join(b.removesuffix("ms") for b in budgets) + " ms"
        infeasible = sum(pb["reasons"].get("infeasible", 0) for pb in n["per_budget"].values())
        out.append(f"| {_run_label(n)} (`{Path(path).stem}`) | {n['queries']:,} | {pct(n['on_time_all'])} % "
                   f"| {names}: {per} | {infeasible:,} of {n['queries']:,} | {pct(n['deadline_met_agrees'])} % "
                   f"| {n['computed_after_deadline']} | "
                   + (f"{n['late']['n']:,} ({n['late']['answered_at_once']:,})" if "late" in n else "not recorded")
                   + " |")
    return "\n".join(out) + "\n\n" + provenance(records)


STAGES = (("request_transit", "request transit (send → callback on the worker)"), ("compute", "compute"),
          ("send", "send"), ("response_transit", "response transit"), ("round_trip", "round trip at the client"))


def node_latency_stages(records: list[tuple[str, dict]]) -> str:
    """The stages of a deadline query (ms, p50 / p99), one column per record."""
    out = ["| stage, ms p50 / p99 | " + " | ".join(f"{_run_label(r['numbers'])} (`{Path(p).stem}`)"
                                                   for p, r in records) + " |",
           "|---|" + "---|" * len(records)]
    for key, label in STAGES:
        cells = []
        for _, r in records:
            s = r["numbers"]["stages_ms"].get(key)
            cells.append(f"{ms(s['p50'])} / {ms(s['p99'])}" if s else "—")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    late = []
    for _, r in records:
        cells = []
        for b in _budgets(r["numbers"]):
            lm = r["numbers"]["per_budget"][b]["late_ms"]
            how_late = f" ({ms(lm['median'])} / {ms(lm['max'])})" if lm["n"] else ""
            cells.append(f"{b.removesuffix('ms')} ms: {lm['n']}{how_late}")
        late.append("; ".join(cells))
    out.append("| late answers per budget (how late, ms median / max) | " + " | ".join(late) + " |")
    return "\n".join(out) + "\n\n" + provenance(records)


def node_latency_summary(records: list[tuple[str, dict]]) -> str:
    """A short table for the README: on time and agreement per run."""
    out = ["| run | on time at the client | `deadline_met` agrees |", "|---|---|---|"]
    for path, r in records:
        n = r["numbers"]
        budgets = _budgets(n)
        out.append(f"| {_run_label(n)}, {n['queries']:,} queries, budgets "
                   f"{', '.join(b.removesuffix('ms') for b in budgets)} ms | {pct(n['on_time_all'])} % "
                   f"| {pct(n['deadline_met_agrees'])} % |")
    return "\n".join(out) + "\n\n" + provenance(records)


EXECUTORS = (("mt", "`MultiThreadedExecutor`"), ("st", "`SingleThreadedExecutor`"),
             ("events", "`EventsExecutor` (experimental, C++), callback in its thread"),
             ("events-worker", "`EventsExecutor`, work handed to a thread and awaited (what a long query needs)"))


def ros_executors(records: list[tuple[str, dict]]) -> str:
    """benchmarks/ros_executors.py: request / response transit p50 / p99 per executor, one column per record."""
    heads = []
    for _, r in records:
        what = "server with a GIL-busy thread" if r["numbers"]["busy_thread"] else "idle server"
        heads.append(f"{what} (load {r['load_average_before'][0]:.1f})")
    out = ["| executor: request p50 / p99, response p50 / p99 (ms) | " + " | ".join(heads) + " |",
           "|---|" + "---|" * len(records)]
    for key, label in EXECUTORS:
        cells = []
        for _, r in records:
            e = r["numbers"]["executors"].get(key)
            cells.append(f"{ms(e['request_ms']['p50'])} / {ms(e['request_ms']['p99'])}, "
                         f"{ms(e['response_ms']['p50'])} / {ms(e['response_ms']['p99'])}" if e else "—")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    calls = sorted({r["numbers"]["queries"] for _, r in records})
    return "\n".join(out) + f"\n\n{', '.join(map(str, calls))} calls per executor.\n\n" + provenance(records)


def node_bench(records: list[tuple[str, dict]], rate_target: str = "≥ 10,000", first_target: str = "≤ 2 ms") -> str:
    """benchmarks/node_bench.py: the stream's first estimate and step rate, against the node's targets."""
    out = ["| measure | " + " | ".join(f"`{Path(p).stem}`" for p, _ in records) + " | target |",
           "|---|" + "---|" * len(records) + "---|"]

    def row(label, fn, target):
        out.append(f"| {label} | " + " | ".join(fn(r["numbers"]) for _, r in records) + f" | {target} |")

    row("first estimate after receipt, node-side, ms median / p90",
        lambda n: f"{ms(n['first_estimate_ms']['node_median'])} / {ms(n['first_estimate_ms']['node_p90'])}",
        first_target)
    row("first estimate, client round trip, ms median / p90",
        lambda n: f"{ms(n['first_estimate_ms']['client_roundtrip_median'])} / "
                  f"{ms(n['first_estimate_ms']['client_roundtrip_p90'])}", "—")
    if any("engine_threads" in r["numbers"] for _, r in records):
        row("engine threads (`engine_threads`)", lambda n: str(n.get("engine_threads", 1)), "—")
    for k in (10, 1):
        row(f"timesteps/s in the node, `publish_every` {k} (engine only)",
            lambda n, k=k: f"{n['timestep_rate'][f'publish_every_{k}']['steps_per_s_median']:,.0f} "
                           f"({n['timestep_rate'][f'publish_every_{k}']['engine_only_steps_per_s']:,.0f})",
            rate_target if k == 10 else "—")
    return "\n".join(out) + "\n\n" + provenance(records)


def node_bench_conv(records: list[tuple[str, dict]]) -> str:
    """node_bench for a conv model: issue 14's targets (5,000 timesteps/s, first estimate within 3 ms)."""
    return node_bench(records, rate_target="≥ 5,000", first_target="≤ 3 ms")


def optimizer_eval(records: list[tuple[str, dict]]) -> str:
    """benchmarks/bench_optimize.py: seconds per optimizer evaluation, one row per record (the code measured:
    this checkout's commit, or the older revision record_command.py ran)."""
    out = ["| code measured (record) | evaluation | seconds per evaluation (median) | image-timesteps/s | losses |",
           "|---|---|---|---|---|"]
    for path, r in records:
        n = r["numbers"]
        code = (n.get("cwd_commit") or r["commit"])[:7]
        steps = n["subset"] * n["timesteps"]
        out.append(f"| {code} (`{Path(path).stem}`) | {n['subset']:,} images × {n['timesteps']} steps, "
                   f"{n['engine']} engine | {n['seconds_per_eval_median']:.2f} | "
                   f"{steps / n['seconds_per_eval_median']:,.0f} | "
                   + ", ".join(f"{float(v):.2f}" for v in n["losses"]) + " |")
    last = records[-1][1]["numbers"]["seconds_per_eval_median"]
    out.append(f"\nAt the last row's speed the paper's first two phases (100 + 1,000 full evaluations) take "
               f"{1100 * last / 3600:.1f} h of evaluations.")
    return "\n".join(out) + "\n\n" + provenance(records)


def optimizer_models(records: list[tuple[str, dict]]) -> str:
    """benchmarks/bench_optimize.py --evals N: seconds per evaluation by model, engine and MPI ranks."""
    out = ["| model (record) | engine | ranks × threads | seconds per evaluation (median) | first two losses |",
           "|---|---|---|---|---|"]
    for path, r in records:
        n = r["numbers"]
        threads = n.get("threads_per_rank", "?")
        out.append(f"| `{n['model']['path']}` (`{Path(path).stem}`) | {n['engine']} | {n['ranks']} × {threads} "
                   f"| {n['seconds_per_eval_median']:.3f} s (of {len(n['seconds'])}) | "
                   + ", ".join(n["losses"][:2]) + " |")
    return "\n".join(out) + "\n\n" + provenance(records)


def incremental(records: list[tuple[str, dict]]) -> str:
    """bench_optimize.py --neuron-steps: neuron-phase steps with the incremental simulator against full runs
    (full runs only in one process; across ranks the losses are compared with the one-process record's)."""
    out = ["| model (record) | hidden layer changed | ranks × threads | steps | samples simulated again "
           "| s per evaluation, incremental / full | full / incremental |", "|---|---|---|---|---|---|---|"]
    for path, r in records:
        n = r["numbers"]
        sec = n["seconds_per_eval_median"]
        if "rows_skipped_per_step_rank0" in n:  # prefix runs: every sample, the layers from the changed one
            reached = f"all; {n['rows_skipped_per_step_rank0']:.2f} of {n['program_rows']} program rows skipped"
        elif n["readout_runs_rank0"] >= n["steps"]:
            reached = f"none ({n['readout_runs_rank0']} readouts)"
        else:
            reached = f"{100 * n['samples_simulated_fraction_rank0']:.0f} %"
        full = f"{sec['full']:.3f}" if "full" in sec else "–"
        ratio = f"**{n['full_over_incremental']:.2f}×**" if "full_over_incremental" in n else "–"
        same = [Path(p).stem for p, o in records if o["numbers"]["ranks"] == 1 and o["numbers"]["model"] == n["model"]
                and o["numbers"]["step_layer"] == n["step_layer"] and o["numbers"]["steps"] == n["steps"]]
        if n["ranks"] > 1 and same:  # the losses across rank counts, compared with the one-process record's
            equal = records[[Path(p).stem for p, _ in records].index(same[0])][1]["numbers"]["losses"] == n["losses"]
            ratio = f"losses {'identical to' if equal else 'DIFFER from'} `{same[0]}`'s"
        layer = f"{n['step_layer'] + 1}" + (f" ({n['step_layer_name']})" if "step_layer_name" in n else "")
        out.append(f"| `{n['model']['path']}` (`{Path(path).stem}`) | {layer} | "
                   f"{n['ranks']} × {n.get('threads_per_rank', '?')} | {n['steps']} | {reached} | "
                   f"{sec['incremental']:.3f} / {full} | {ratio} |")
    return "\n".join(out) + "\n\n" + sweep_means(records) + provenance(records)


def sweep_means(records: list[tuple[str, dict]]) -> str:
    """For a model whose prefix records cover every hidden layer (one process): the mean time per
    evaluation of a neuron-phase sweep over all its channels (each layer's median weighted by its channels)."""
    lines = []
    by_model: dict[str, dict[int, dict]] = {}
    for _, r in records:
        n = r["numbers"]
        if "channels_per_hidden_layer" in n and n["ranks"] == 1 and "full" in n["seconds_per_eval_median"]:
            by_model.setdefault(n["model"]["path"], {})[n["step_layer"]] = n
    for model, layers in by_model.items():
        channels = next(iter(layers.values()))["channels_per_hidden_layer"]
        if sorted(layers) != list(range(len(channels))):
            continue
        mean = {k: sum(layers[i]["seconds_per_eval_median"][k] * c for i, c in enumerate(channels)) / sum(channels)
                for k in ("incremental", "full")}
        lines.append(f"A neuron-phase sweep over every channel of `{model}` ({' + '.join(map(str, channels))} "
                     f"channels, each layer's median weighted by its channels): {mean['incremental']:.3f} s per "
                     f"evaluation with prefixes, {mean['full']:.3f} s in full, "
                     f"**{mean['full'] / mean['incremental']:.2f}×**.")
    return "\n".join(lines) + ("\n\n" if lines else "")


def bench_paths(records: list[tuple[str, dict]]) -> str:
    """benchmarks/bench_paths.py: per layer, the lowest input rate at which the dense path (batched) or one
    GEMM/einsum (streaming, per record's k) beat the event-driven path, and the ratio at the highest rate."""
    def cell(entry, key, slow, fast):
        top = entry["seconds"][max(entry["seconds"], key=float)]
        ratio = top[slow] / top[fast]
        return f"{entry[key] if entry[key] is not None else 'never'} ({ratio:.2f}× at 0.9)"
    layers = [name for name in records[0][1]["numbers"]["layers"] if not name.startswith("streaming")]
    out = ["| layer | " + " | ".join(f"batched dense path faster from (`{Path(p).stem}`)" for p, _ in records)
           + " | " + " | ".join(f"streaming GEMM faster from (`{Path(p).stem}`)" for p, _ in records) + " |",
           "|---|" + "---|" * (2 * len(records))]
    for name in layers:
        row = [cell(r["numbers"]["layers"][name], "dense_faster_from_rate", "events", "dense") for _, r in records]
        for _, r in records:
            key = next(k for k in r["numbers"]["layers"] if k.startswith("streaming") and k.endswith(": " + name))
            row.append(cell(r["numbers"]["layers"][key], "gemm_faster_from_rate", "events", "gemm"))
        out.append(f"| {name} | " + " | ".join(row) + " |")
    return "\n".join(out) + "\n\n" + provenance(records)


def _printed(fn, *args) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        fn(*args)
    return buf.getvalue().rstrip("\n")


def engines(records: list[tuple[str, dict]]) -> str:
    """benchmarks/bench_engines.py --record: engines_table.py's tables, one record each."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import engines_table

    return "\n\n".join(_printed(engines_table.table, r["numbers"]) for _, r in records) + "\n\n" + provenance(records)


def peers(records: list[tuple[str, dict]]) -> str:
    """benchmarks/peers/bench_peers.py --record: peers_table.py's tables, one run per record (named by the record)."""
    sys.path.insert(0, str(ROOT / "benchmarks" / "peers"))
    import peers_table

    runs = {Path(p).stem: r["numbers"] for p, r in records}
    return _printed(peers_table.tables, runs) + "\n\n" + provenance(records)


def sparsity_search(records: list[tuple[str, dict]]) -> str:
    """benchmarks/sparsity_search.py: ANN accuracy and sparsity after fine-tuning, per (lambda_a, lambda_w): as
    multiples of the net's default lambdas, or (``--absolute``) as values."""
    out = []
    for path, r in records:
        n = r["numbers"]
        la, lw = n["default_lambdas"]
        absolute = n.get("absolute", False)
        head = "| lambda_a | lambda_w |" if absolute else "| lambda_a × default | lambda_w × default |"
        data = f" on {n['dataset']}" if n.get("dataset") else ""
        out += [f"`{Path(path).stem}`: net `{n['net']}`{data}, {n['epochs']} epochs at learning rate "
                f"{n['learning_rate']:g}; "
                f"the default lambdas when this ran: lambda_a {la:.4g}, lambda_w {lw:.4g}", "",
                head + " ANN test accuracy before → after | change, points | after, with the moving-average BN "
                "| activation sparsity before → after | weight sparsity after | BN statistics kept |",
                "|---|---|---|---|---|---|---|---|"]
        for row in n["rows"]:
            change = 100 * (row["ann_after"] - row["ann_before"])
            lams = (f"{row['lambda_a']:.4g} | {row['lambda_w']:.4g}" if absolute
                    else f"{row['lambda_a_x']:g} | {row['lambda_w_x']:g}")
            out.append(f"| {lams} | {acc(row['ann_before'])} → {acc(row['ann_after'])} % | {change:+.2f} | "
                       f"{acc(row['ann_after_moving_average_bn'])} % | {pct(row['activation_sparsity_before'])} → "
                       f"{pct(row['activation_sparsity_after'])} % | {pct(row['weight_sparsity_after'])} % "
                       f"| {row.get('bn_statistics') or '–'} |")
        out.append("")
    return "\n".join(out) + "\n" + provenance(records)


def issue14_peers(records: list[tuple[str, dict]]) -> str:
    """benchmarks/peers/bench_issue14.py: throughput as the ratio to the plain NumPy loop of the same run, ours
    against the best peer (the XLA loop, sinabs, SpikingJelly), per workload and mode."""
    out = ["| workload (record) | mode | ours | plain TF+XLA `while_loop` | sinabs | SpikingJelly | ours / best peer |",
           "|---|---|---|---|---|---|---|"]
    for path, r in records:
        for name, w in r["numbers"]["workloads"].items():
            for mode, key, ours_keys in (
                    (f"{w['batch']} images per call", "batched_image_steps_vs_numpy_loop", ("ours_batch",)),
                    ("one image per call", "one_frame_steps_vs_numpy_loop",
                     ("ours_stream_k10", "ours_stream_k100", "ours_stream_k10_2threads"))):
                v = w[key]
                ours = {k: v[k] for k in ours_keys if k in v}
                best_ours = max(ours.values())
                peers = {"xla": v.get("xla_loop"),
                         "sinabs": max((v[k] for k in ("sinabs", "sinabs_per_step", "sinabs_whole_frame") if k in v),
                                       default=None),
                         "spikingjelly": max((v[k] for k in ("spikingjelly", "spikingjelly_per_step",
                                                             "spikingjelly_whole_frame") if k in v), default=None)}
                best_peer = max((x for x in peers.values() if x is not None), default=None)
                cells = [f"{x:.2f}" if x is not None else "not timed" for x in peers.values()]
                ours_txt = ", ".join(f"{x:.2f} ({k.removeprefix('ours_').replace('_', ' ')})" for k, x in ours.items())
                ratio = f"**{best_ours / best_peer:.2f}×**" if best_peer else "—"
                out.append(f"| {name} (`{Path(path).stem}`) | {mode} | {ours_txt} | " + " | ".join(cells)
                           + f" | {ratio} |")
    return "\n".join(out) + "\n\n" + provenance(records)


def bench_conv(records: list[tuple[str, dict]]) -> str:
    """benchmarks/bench_conv.py: our engines now against an older revision's, in one run (image-steps/s)."""
    out = ["| workload (record) | engine | old (image-steps/s) | new | new / old | new, G events/s |",
           "|---|---|---|---|---|---|"]
    labels = {"batch": "BatchEngine", "stream_k10": "StreamingEngine k=10", "stream_k100": "StreamingEngine k=100"}
    for path, r in records:
        n = r["numbers"]
        for name, w in n["workloads"].items():
            ips, gev = w["image_steps_per_s"], w["g_events_per_s"]
            for key, label in labels.items():
                if "new_" + key not in ips:
                    continue
                old = ips.get("old_" + key)
                out.append(f"| {name} (`{Path(path).stem}`, old = {n['old']}) | {label} | "
                           + (f"{old:,.0f}" if old else "refused") + f" | {ips['new_' + key]:,.0f} | "
                           + (f"**{w['new_over_old'][key]:.2f}×**" if key in w["new_over_old"] else "—")
                           + f" | {gev['new_' + key]:.1f} |")
    return "\n".join(out) + "\n\n" + provenance(records)


def evaluation(records: list[tuple[str, dict]]) -> str:
    """anytime-snn evaluate --record: accuracy over time and the Pareto metrics, one row per record."""
    out = ["| model (record) | data | accuracy at t = 1 | peak (at t) | final | a_max | P_l | P_p | events / image "
           "| t to 90 / 95 / 99 % of a_max |", "|---|---|---|---|---|---|---|---|---|---|"]
    for path, r in records:
        n = r["numbers"]
        s = n["summary"]
        to = steps_to({k: v["timesteps"] for k, v in s["thresholds"].items()})
        out.append(f"| `{r['model']['path']}` (`{Path(path).stem}`) | {n['dataset']} {n['split']}, {n['samples']:,} "
                   f"images × {s['timesteps']} steps | {100 * n['accuracy'][0]:.2f} % | "
                   f"{100 * s['peak_accuracy']:.2f} % ({s['peak_timestep']}) | {100 * s['final_accuracy']:.2f} % | "
                   f"{100 * s['a_max']:.2f} % | {s['P_l']:.3f} | {s['P_p']:,.0f} | {s['events_per_sample']:.3g} | "
                   f"{to} |")
    return "\n".join(out) + "\n\n" + provenance(records)


def node_soak(records: list[tuple[str, dict]]) -> str:
    """benchmarks/node_soak.py: a long stream plus queries, what the node did and its memory, per record."""
    out = ["| run (record) | node | node RSS, MB "
           "| frames: sent / received / completed / dropped / preempted / rejected "
           "| queries: answered of sent (stop reasons) | `deadline_met` (node) |", "|---|---|---|---|---|---|"]
    for path, r in records:
        n = r["numbers"]
        a, d, q, m = n["args"], n["diagnostics_end"], n["queries"], n["rss_mb"]
        counts = (n["frames_sent"], d.get("frames_received"), d.get("frames_processed"), d.get("frames_dropped"),
                  d.get("frames_preempted"), d.get("frames_rejected"))
        frames = " / ".join(str(v) for v in counts)
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(q["stop_reasons"].items()))
        met = f"{pct(q['node_deadline_met'])} %" if q["node_deadline_met"] is not None else "—"
        out.append(f"| {n['seconds'] / 60:g} min, {a['fps']:g} fps, {a['query_hz']:g} queries/s of "
                   f"{1e3 * a['budget']:g} ms (`{Path(path).stem}`) | "
                   f"{'alive' if n['node_alive_at_end'] else 'DEAD'}, exit {n['node_exit_code']} after SIGTERM; "
                   f"newest frame wins: {n['newest_wins']} | {m['first_sample']:.1f} → {m['end']:.1f} "
                   f"({m['growth_after_first_sample']:+.1f} after the first sample, {m['growth_second_half']:+.1f} "
                   f"in the second half) | {frames} | {q['answered']:,} of {q['sent']:,} ({reasons}) | {met} |")
    return "\n".join(out) + "\n\n" + provenance(records)


def reproduce(records: list[tuple[str, dict]]) -> str:
    """anytime-snn reproduce --record: per model, each variant's metrics and the improvement over the baseline."""
    out = ["| model, variant (record) | ANN (a_max) | peak accuracy (t) | final | P_l | P_p | events / image "
           "| t to 90 / 95 / 99 % of the ANN |", "|---|---|---|---|---|---|---|---|"]
    notes = []
    for path, r in records:
        for name, variants in r["numbers"]["models"].items():
            for variant, v in variants.items():
                m = v.get("metrics") if isinstance(v, dict) else None
                if not m:
                    continue
                to = steps_to(m["time_to"])
                out.append(f"| {name}, {variant} (`{Path(path).stem}`) | {acc(m['ann_accuracy'])} % "
                           f"| {acc(m['peak_accuracy'])} % ({m['peak_timestep']}) | {acc(m['final_accuracy'])} % "
                           f"| {m['P_l']:.3g} | {m['P_p']:.3g} | {m['events_per_sample']:.3g} | {to} |")
            imp = variants.get("improvement")
            if imp:
                notes.append(f"{name}: P_l {imp['P_l']:.2f}× and P_p {imp['P_p']:.2f}× lower than the baseline "
                             "(above 1 is better).")
    return "\n".join(out) + "\n\n" + "\n".join(notes) + "\n\n" + provenance(records)


def pareto_split(records: list[tuple[str, dict]]) -> str:
    """anytime-snn reproduce fig5 --record: P_l and P_p of each variant split into the gap below a_max at the
    SNN's peak and the rise to that peak (anytime_snn.metrics.pareto_split), from the recorded test curves."""
    from anytime_snn.metrics import pareto_split as split

    out = ["| model, variant (record) | a_max | peak | P_l: gap + rise | P_p: gap + rise |", "|---|---|---|---|---|"]
    for path, r in records:
        for name, variants in r["numbers"]["models"].items():
            for variant, v in variants.items():
                if not (isinstance(v, dict) and v.get("curve")):
                    continue
                a_max = v["metrics"]["ann_accuracy"]
                s = split(v["curve"]["accuracy"], v["curve"]["events_per_step"], a_max)
                out.append(f"| {name}, {variant} (`{Path(path).stem}`) | {acc(a_max)} % | {acc(s['peak'])} % "
                           f"| {s['P_l_gap']:.3g} + {s['P_l_rise']:.3g} = {s['P_l_gap'] + s['P_l_rise']:.3g} "
                           f"| {s['P_p_gap']:.2g} + {s['P_p_rise']:.3g} = {s['P_p_gap'] + s['P_p_rise']:.3g} |")
    return "\n".join(out) + "\n\n" + provenance(records)


def optimization_runs(records: list[tuple[str, dict]]) -> str:
    """anytime-snn reproduce --record: the full method's optimization per model (order of the neuron phase's
    sweep, evaluations, time) beside the whole command's wall time and the test-set factors."""
    out = ["| model (record) | neuron phase sweep | evaluations | training loss start → best | sparsity "
           "fine-tuning | optimization | whole command | test: peak accuracy (t), P_l / P_p factors |",
           "|---|---|---|---|---|---|---|---|"]
    notes = []
    for path, r in records:
        n = r["numbers"]
        order = n["settings"].get("neuron_order", "input-first")
        for name, variants in n["models"].items():
            full, imp = variants["full"], variants["improvement"]
            opt, m = full["optimization"], full["metrics"]
            sp = full.get("sparsify")
            sparsify = (f"{sp['wall_time_s'] / 60:.1f} min, ANN {acc(sp['before']['test_accuracy'])} → "
                        f"{acc(sp['after']['test_accuracy'])} %" if sp else "–")
            out.append(f"| {name} (`{Path(path).stem}`) | {order} | {opt['evaluations']:,} | "
                       f"{opt['start']['loss']:.3f} → {opt['best']['loss']:.3f} | {sparsify} | "
                       f"{opt['wall_time_s'] / 60:.1f} min | {_command_time(r, variants)} | "
                       f"{acc(m['peak_accuracy'])} % ({m['peak_timestep']}), {imp['P_l']:.1f}× / {imp['P_p']:.1f}× |")
            if variants.get("stage_seconds"):
                notes.append(_stage_times(f"{name} (`{Path(path).stem}`)", variants["stage_seconds"]))
    return "\n".join(out) + "\n\n" + ("\n\n".join(notes) + "\n\n" if notes else "") + provenance(records)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def _command_time(record: dict, variants: dict) -> str:
    """The whole command's wall time; a command that took its stages from the cache says what they took."""
    total = record["wall_seconds"]
    stages = sum(v for v in (variants.get("stage_seconds") or {}).values() if v)
    text = _duration(total)
    if stages <= total + 60:
        return text
    return text + f" ({stages / 60:.1f} min of stages, {'all' if total < 60 else 'some'} cached from earlier runs)"


def _stage_times(label: str, stages: dict) -> str:
    """How long each stage of a reproduce run took when it ran (a cached stage keeps its run's time)."""
    return f"{label}, each stage when it ran: " + ", ".join(
        f"{k} {_duration(v)}" if v is not None else f"{k} (cached, not timed)"
        for k, v in stages.items()) + "."


def fig6(records: list[tuple[str, dict]]) -> str:
    """anytime-snn reproduce fig6 --record: each component added to the baseline and removed from the full method
    (paper Figure 6), with the fine-tuning's cost in ANN accuracy."""
    out = ["| variant (record) | ANN (a_max) | peak accuracy (t) | P_l | P_p | events / image | t to 90 / 95 / 99 % "
           "of the ANN | P_l factor | P_p factor |", "|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for path, r in records:
        n = r["numbers"]
        for label, v in n["variants"].items():
            m, imp = v["metrics"], v["improvement"]
            out.append(f"| {label} (`{Path(path).stem}`) | {acc(m['ann_accuracy'])} % | {acc(m['peak_accuracy'])} % "
                       f"({m['peak_timestep']}) | {m['P_l']:.3g} | {m['P_p']:.3g} | {m['events_per_sample']:.3g} | "
                       f"{steps_to(m['time_to'])} | {imp['P_l']:.2f}× | {imp['P_p']:.2f}× |")
            sp = v.get("sparsify")
            if sp and not notes:
                notes.append(f"Sparsity fine-tuning (λ_a {sp['lambda_a']:.3g}, λ_w {sp['lambda_w']:.3g}): ANN "
                             f"{acc(sp['before']['test_accuracy'])} → {acc(sp['after']['test_accuracy'])} %, "
                             f"activation sparsity {pct(sp['before']['activation_sparsity'])} → "
                             f"{pct(sp['after']['activation_sparsity'])} %.")
        if n.get("stage_seconds"):
            notes.append(_stage_times(f"`{Path(path).stem}`", n["stage_seconds"]))
    return "\n".join(out) + "\n\n" + "\n\n".join(notes) + "\n\n" + _fig6_optimizations(records) + provenance(records)


def _fig6_optimizations(records: list[tuple[str, dict]]) -> str:
    """Each optimized Figure 6 variant's search: evaluations, training loss from start to best, wall time."""
    out = ["| optimized variant (record) | evaluations | training loss start → best | optimization |",
           "|---|---|---|---|"]
    for path, r in records:
        for label, v in r["numbers"]["variants"].items():
            if opt := v.get("optimization"):
                out.append(f"| {label} (`{Path(path).stem}`) | {opt['evaluations']:,} | {opt['start']['loss']:.4g} → "
                           f"{opt['best']['loss']:.4g} | {_duration(opt['wall_time_s'])} |")
    return "\n".join(out) + "\n\n" if len(out) > 2 else ""


def faults(records: list[tuple[str, dict]]) -> str:
    """tests/test_faults.py -k random_points via record_command.py: optimizer runs SIGKILLed at random points."""
    out = ["| record | kills | runs | processes | kill points drawn: in writes / after evaluations / timed | result |",
           "|---|---|---|---|---|---|"]
    for path, r in records:
        n = r["numbers"]
        k = n["kill_points"]
        result = "every run resumed to the uninterrupted run's result" if n["all_runs_identical"] else "DIFFERED"
        out.append(f"| `{Path(path).stem}` (seed {n['seed']}) | {n['kills']} | {n['runs']} | {n['processes']} | "
                   f"{k['write']} / {k['eval']} / {k['time']} | {result} |")
    return "\n".join(out) + "\n\n" + provenance(records)


def subset_rank(records: list[tuple[str, dict]]) -> str:
    """benchmarks/subset_rank.py: how well the optimizer's training subset of each size ranks parameter sets,
    against a larger reference set."""
    out = ["| model (record) | images per evaluation | Spearman with the reference | regret (loss) "
           "| seconds per evaluation |", "|---|---|---|---|---|"]
    for path, r in records:
        n = r["numbers"]
        ref = n["reference"]
        lo, hi = ref["loss_range"]
        label = f"`{n['model']}` (`{Path(path).stem}`)"
        for row in n["subsets"]:
            out.append(f"| {label} | {row['size']:,} | {row['spearman']:.3f} | {row['regret']:.4f} | "
                       f"{row['seconds_per_eval']:.2f} |")
        out.append(f"| {label} | {ref['size']:,} (reference; {n['states']} states, losses {lo:.3f} to {hi:.3f}) "
                   f"| 1 | 0 | {ref['seconds_per_eval']:.2f} |")
    return "\n".join(out) + "\n\n" + provenance(records)


def layer_rates(records: list[tuple[str, dict]]) -> str:
    """benchmarks/layer_rates.py: per hidden layer of converted nets, the ANN rates the SNN converges to, and the
    first layer's bias-driven activity at blank receptive fields."""
    out = ["| model (record) | layer | active neurons | mean rate (spikes / step) | active, slower than 1/20 "
           "| active, slower than 1/10 |", "|---|---|---|---|---|---|"]
    notes = []
    for path, r in records:
        n = r["numbers"]
        for m in n["models"]:
            label = f"`{m['model']['manifest_sha256'][:8]}` (`{Path(path).stem}`)"
            for name, row in m["layers"].items():
                out.append(f"| {label} | {name} | {pct(row['active_share'])} % | {row['mean_rate']:.4f} | "
                           f"{pct(row['active_slower_than_1_20'])} % | {pct(row['active_slower_than_1_10'])} % |")
            f = m["first_layer"]
            steps = ", ".join(map(str, f["first_spike_step_of_bias_only_neurons"]))
            bias = (f"{f['channels_positive_bias']} of {f['channels']} channels with a positive bias (V0 = 0: a neuron "
                    f"driven by the bias alone first fires at step {steps})" if steps else
                    f"no channel with a positive bias (of {f['channels']})")
            notes.append(f"`{m['model']['manifest_sha256'][:8]}` ({m['model']['path']}; ANN {pct(m['ann_accuracy'])} % "
                         f"on these {n['images']} test images): {f['layer']} has {bias}; "
                         f"{pct(f['blank_receptive_field_share'])} % of its positions "
                         f"see only blank input, and they carry {pct(f['activation_share_at_blank_fields'])} % of "
                         f"its activation.")
    return "\n".join(out) + "\n\n" + "\n\n".join(notes) + "\n\n" + provenance(records)


def acc(x: float) -> str:
    """An accuracy over thousands of test images: two decimals, 0.99155 -> 99.16."""
    return f"{100 * x:.2f}"


def image_convert(records: list[tuple[str, dict]]) -> str:
    """benchmarks/bench_image_convert.py: the node's image conversion per frame, median."""
    out = ["| frame (record) | into the model's input | median per frame |", "|---|---|---|"]
    for path, r in records:
        n = r["numbers"]
        shape = "×".join(str(d) for d in n["model_input"])
        for frame, us in n["median_us_per_frame"].items():
            out.append(f"| {frame} (`{Path(path).stem}`) | {shape} | {us:,.0f} µs |")
    big = [(path, r["numbers"]["largest_message"]) for path, r in records if "largest_message" in r["numbers"]]
    if big:
        out += ["", "| largest accepted message (record) | size | time per call (median of 3) "
                "| peak extra allocation |", "|---|---|---|---|"]
        for path, m in big:
            for name, v in m.items():
                out.append(f"| {name} (`{Path(path).stem}`) | {v['message_mib']:.0f} MiB | {v['seconds']:.2f} s "
                           f"| {v['peak_extra_mib']:.0f} MiB |")
    return "\n".join(out) + "\n\n" + provenance(records)


def fresh_clone(records: list[tuple[str, dict]]) -> str:
    """benchmarks/fresh_clone.py via record_command.py: a new user's command on a fresh clone, timed."""
    out = ["| command (record) | commit | wall time | result | `.venv` | clone |", "|---|---|---|---|---|---|"]
    for path, r in records:
        n = r["numbers"]
        result = (f"{n['passed']} of {n['tests']} tests passed, {n['failed']} failed, {n['skips']} skips"
                  if "tests" in n else f"exit status {n['exit_status']}")
        out.append(f"| `{n['command']}` (`{Path(path).stem}`) | {n['clone_commit'][:7]} | {n['wall_seconds']:.0f} s "
                   f"| {result} | {n['venv_mb']:,.0f} MB | {n['clone_mb']:,.0f} MB |")
    return "\n".join(out) + "\n\n" + provenance(records)


def _time_to(m: dict, level: str) -> str:
    return steps_to({k: v for k, v in m["time_to"].items() if abs(float(k) - float(level)) < 1e-9}) or "never"


def fig4(records: list[tuple[str, dict]]) -> str:
    """anytime-snn reproduce fig4 --record: unoptimized models, V0 = 0.5 against V0 = 0 (paper Figure 4)."""
    out = ["| model (record) | ANN | P_l, V0 = 0 | P_l, V0 = 0.5 | relative P_l | peak accuracy (t), V0 = 0 / 0.5 "
           "| t to 99 % of the ANN, V0 = 0 / 0.5 |", "|---|---|---|---|---|---|---|"]
    for path, r in records:
        for name, m in r["numbers"]["models"].items():
            a, b = m["v0_0"], m["v0_0.5"]
            out.append(f"| {name} (`{Path(path).stem}`) | {acc(a['ann_accuracy'])} % | {a['P_l']:.3g} | {b['P_l']:.3g} "
                       f"| **{m['relative_P_l']:.3f}** | {acc(a['peak_accuracy'])} % ({a['peak_timestep']}) / "
                       f"{acc(b['peak_accuracy'])} % ({b['peak_timestep']}) | {_time_to(a, '0.99')} / "
                       f"{_time_to(b, '0.99')} |")
    return "\n".join(out) + "\n\n" + provenance(records)


def table2(records: list[tuple[str, dict]]) -> str:
    """anytime-snn reproduce table2 --record: SpiNNaker dynamics before/after optimizing under them (paper Table 2),
    against the paper's columns; the NEST check of both networks."""
    out = []
    for path, r in records:
        n = r["numbers"]
        before, after, paper, spikes = n["before"], n["after"], n["paper"], n["spikes"]
        rows = [("max_t a_t", lambda v: f"{acc(v['peak_accuracy'])} % (t = {v['peak_timestep']})",
                 lambda v: f"{acc(v['peak_accuracy'])} %"),
                ("P_l", lambda v: f"{v['P_l']:.3g}", lambda v: f"{v['P_l']:.3g}")]
        out += [f"`{Path(path).stem}`: T = {n['timesteps']}, a_max = the ANN's {acc(before['ann_accuracy'])} % on the "
                "evaluated images", "", "| metric | paper before | paper after | ours before | ours after |",
                "|---|---|---|---|---|"]
        for label, ours, theirs in rows:
            out.append(f"| {label} | {theirs(paper['before'])} | {theirs(paper['after'])} | {ours(before)} "
                       f"| **{ours(after)}** |")
        out.append(f"| P_p, spiking events | {paper['before']['P_p_spikes']:.3g} | {paper['after']['P_p_spikes']:.3g} "
                   f"| {spikes['before']['P_p']:.3g} | **{spikes['after']['P_p']:.3g}** |")
        out.append(f"| P_p, synaptic events | — | — | {before['P_p']:.3g} | {after['P_p']:.3g} |")
        out.append(f"| spikes per sample | — | — | {spikes['before']['total']:,.0f} "
                   f"| {spikes['after']['total']:,.0f} |")
        out.append(f"| t to 90 / 99 % of a_max | — | — | {_time_to(before, '0.9')} / {_time_to(before, '0.99')} "
                   f"| {_time_to(after, '0.9')} / {_time_to(after, '0.99')} |")
        imp = n["improvement"]
        out += ["", f"P_l {imp['P_l']:.1f}× and P_p (synaptic events) {imp['P_p']:.1f}× lower after optimization; "
                f"P_p in spikes {spikes['before']['P_p'] / spikes['after']['P_p']:.1f}× lower (the paper: "
                f"{paper['before']['P_l'] / paper['after']['P_l']:.1f}× and "
                f"{paper['before']['P_p_spikes'] / paper['after']['P_p_spikes']:.1f}×).", ""]
        for key, c in (n.get("nest") or {}).items():
            out.append(f"- NEST, {key} ({c['images']} images × {c['timesteps']} steps): spike trains "
                       f"{'identical' if c['spike_trains_equal'] else 'not identical'} to the reference, predictions "
                       f"{'identical' if c['predictions_equal'] else 'differ'}, events "
                       f"{'identical' if c['events_equal'] else 'differ'}; accuracy at the last step "
                       f"{acc(c['accuracy_nest'])} % (our batched engine {acc(c['accuracy_ours'])} %).")
        out.append("")
    return "\n".join(out) + "\n" + provenance(records)


def test_durations(records: list[tuple[str, dict]]) -> str:
    """benchmarks/test_durations.py via record_command.py: tests run with the README's command, slowest first."""
    out = []
    for path, r in records:
        n = r["numbers"]
        out += [f"`{Path(path).stem}`: {n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped in "
                f"{n['seconds']:.0f} s (the whole command, start-up included).", "",
                "| test | outcome | seconds |", "|---|---|---|"]
        for t in sorted(n["tests"], key=lambda t: -t["seconds"]):
            out.append(f"| `{t['name'].rsplit('.', 1)[-1]}` | {t['outcome']} | {t['seconds']:.1f} |")
        out.append("")
    return "\n".join(out) + "\n" + provenance(records)


def fuzz(records: list[tuple[str, dict]]) -> str:
    """fuzz/record_run.py via record_command.py: one longer coverage-guided run per harness, from the seeds."""
    out = ["| harness (record) | run | executions (per s) | coverage edges / features / corpus at the end | peak RSS "
           "| crash / timeout / out-of-memory inputs | module lines covered by the corpus and seeds |",
           "|---|---|---|---|---|---|---|"]
    for path, r in records:
        n = r["numbers"]
        found = len(n["crashes"]) + len(n["timeouts"]) + len(n["ooms"])
        out.append(f"| `{n['target']}` (`{Path(path).stem}`) | {n['seconds']} s | {n['executions']:,} "
                   f"({n['executions_per_s']:,}/s) | {n['coverage_edges']} / {n['features']} / {n['corpus']} "
                   f"| {n['peak_rss_mb']} MB | {found if found else 'none'} "
                   f"| {n['corpus_line_coverage_percent']:.0f} % |")
    return "\n".join(out) + "\n\n" + provenance(records)


def export(records: list[tuple[str, dict]]) -> str:
    """anytime-snn export --record: a bundle on a PyNN back end, against our reference engine (--compare)."""
    out = ["| model on back end (record) | dynamics | network | images × steps | against our engine (or the mapping) "
           "| accuracy at the last step (peak, t) | spikes / events per image | build / run |",
           "|---|---|---|---|---|---|---|---|"]
    for path, r in records:
        n = r["numbers"]
        s, run, c = n["summary"], n.get("run") or {}, n.get("compare")
        same = ("spike trains, predictions at every step and events " +
                ("identical" if c["spike_trains_equal"] and c["predictions_equal"] and c["events_equal"] else "differ")
                + f"; max \\|Δv_out\\| {c['max_abs_v_out_difference']:.3g}") if c else "not compared"
        result = (f"{acc(run['final_accuracy'])} % ({acc(run['peak_accuracy'])} %, {run['peak_timestep']}) | "
                  f"{run['spikes_per_sample']:,.0f} / {run['events_per_sample']:.3g} | {s['build_seconds']:.0f} s / "
                  f"{run['seconds']:.0f} s") if run else "— | — | " + f"{s['build_seconds']:.0f} s / —"
        if "mapping" in n:  # sPyNNaker: placement and routing only (a virtual board simulates nothing)
            m = n["mapping"]
            cores = ", ".join(f"{k} {v}" for k, v in m["cores_per_population"].items())
            same = (f"mapped in {m['seconds']:.0f} s to {m['cores']} cores on {m['chips']} chips "
                    f"({'virtual board' if m['virtual_board'] else 'board'}; cores: {cores})")
            result = "— | — | —"
        out.append(f"| `{n['model']}` on {n['backend']} (`{Path(path).stem}`) | {n['dynamics']} | {s['neurons']:,} "
                   f"neurons, {s['synapses']:,} synapses | {n['images']} × {n['timesteps']} | {same} | {result} |")
    return "\n".join(out) + "\n\n" + provenance(records)


TEMPLATES = {f.__name__: f for f in (node_latency, node_latency_stages, node_latency_summary, ros_executors,
                                     node_bench, node_bench_conv, optimizer_eval, sparsity_search, issue14_peers,
                                     bench_conv, evaluation, node_soak, engines, peers, reproduce, incremental,
                                     bench_paths, fig4, table2, image_convert,
                                     fresh_clone, test_durations, fuzz, export, optimizer_models,
                                     optimization_runs, fig6, faults, subset_rank, pareto_split, layer_rates)}


# ---- rendering and checking ------------------------------------------------------------------------------------

def render_block(spec: str) -> str:
    name, *paths = spec.split()
    if name not in TEMPLATES:
        raise SystemExit(f"render_docs: unknown template {name!r} (known: {', '.join(sorted(TEMPLATES))})")
    if not paths:
        raise SystemExit(f"render_docs: block {name!r} names no record")
    return TEMPLATES[name]([(p, load(p)) for p in paths])


def render(text: str) -> str:
    return BLOCK.sub(lambda m: f"{m.group(1)}{render_block(m.group('spec'))}\n{m.group(4)}", text)


def outside_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line outside rendered blocks (the markers themselves excluded)."""
    inside, out = False, []
    for i, line in enumerate(text.splitlines(), 1):
        if line.startswith("<!-- rendered:"):
            inside = True
        elif line.startswith("<!-- /rendered -->"):
            inside = False
        elif not inside:
            out.append((i, line))
    return out


def unrecorded(path: Path) -> list[tuple[int, str]]:
    """Lines of a doc, outside rendered blocks, that state a measured number."""
    return [(i, line) for i, line in outside_blocks(path.read_text()) if MEASURED.search(line)]


def allowlist() -> set[str]:
    """Entries of docs/unrecorded.txt: `PATH: LINE` (the line exactly as in the doc); # comments, blank lines."""
    entries = set()
    for line in ALLOWLIST.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            entries.add(line)
    return entries


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="do not write; exit 1 with a diff where a doc differs")
    ap.add_argument("--unrecorded", action="store_true",
                    help="print the lines stating a measured number outside rendered blocks that are not in "
                         "docs/unrecorded.txt, in that file's format, then its stale entries; exit 1 if any")
    args = ap.parse_args(argv)
    if args.unrecorded:
        allowed = allowlist()
        current = [f"{rel(p)}: {line}" for p in docs() for _, line in unrecorded(p)]
        missing = [entry for entry in current if entry not in allowed]
        stale = sorted(allowed - set(current))
        print("\n".join(missing))
        if stale:
            print("\n# stale entries of docs/unrecorded.txt (their line changed or no longer states a number):\n"
                  + "\n".join(stale))
        return 1 if missing or stale else 0
    differ = 0
    for p in docs():
        old = p.read_text()
        new = render(old)
        if new == old:
            continue
        if args.check:
            differ += 1
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                                       f"{rel(p)} (committed)", f"{rel(p)} (from its records)"))
        else:
            p.write_text(new)
            print(f"render_docs: rewrote {rel(p)}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
