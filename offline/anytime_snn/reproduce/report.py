"""Write an experiment's results: ``results.json`` (every number), ``report.md`` (tables) and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..fsutil import atomic_write


def _pct(v) -> str:
    return "–" if v is None else f"{v * 100:.2f} %"


def _num(v, fmt=".4g") -> str:
    return "–" if v is None else format(v, fmt)


def _factor(v) -> str:
    return "–" if v is None else f"{v:.2f}×"


def _metric_rows(rows: dict[str, dict]) -> list[str]:
    out = ["| variant | ANN | peak accuracy (t) | P_l | P_p | events / sample | t to 90 / 95 / 99 % of ANN |",
           "|---|---|---|---|---|---|---|"]
    for label, m in rows.items():
        t = m["time_to"]
        out.append(f"| {label} | {_pct(m['ann_accuracy'])} | {_pct(m['peak_accuracy'])} ({m['peak_timestep']}) | "
                   f"{_num(m['P_l'], '.3f')} | {_num(m['P_p'])} | {_num(m['events_per_sample'])} | "
                   f"{t.get('0.9')} / {t.get('0.95')} / {t.get('0.99')} |")
    return out


def _bars(path: Path, groups: dict[str, dict[str, float | None]], ylabel: str, title: str, log: bool = True) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(groups)
    series = sorted({k for g in groups.values() for k in g}, key=lambda k: list(next(iter(groups.values()))).index(k)
                    if k in next(iter(groups.values())) else 99)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(names) * max(1, len(series))), 3.4), dpi=100)
    width = 0.8 / max(1, len(series))
    for j, key in enumerate(series):
        vals = [groups[n].get(key) or np.nan for n in names]
        ax.bar(np.arange(len(names)) + j * width - 0.4 + width / 2, vals, width, label=key)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels(names, rotation=20 if len(names) > 3 else 0, ha="right" if len(names) > 3 else "center",
                       fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    if len(series) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _curves(out: Path, name: str, curves: dict[str, dict], a_max: float | None, title: str) -> None:
    from ..report import plot_curves

    plot_curves({k: (np.asarray(c["accuracy"]), np.asarray(c["events_per_step"])) for k, c in curves.items()},
                out / name, a_max=a_max, title=title)


def write(results: dict, out: Path, settings: dict) -> Path:
    """Write results.json, report.md and the plots of one experiment into ``out``; returns report.md."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    exp = results["experiment"]
    lines = [f"# `anytime-snn reproduce {exp}`", "",
             f"Settings: {'quick (CI-sized)' if settings.get('quick') else 'full'}; timesteps {settings['timesteps']}, "
             f"{settings['test_limit']} test images, optimization phases {','.join(settings['phases'])} budgets "
             f"{','.join(map(str, settings['budgets']))} on {settings['subset']} training images. a_max = the "
             f"unoptimized ANN's accuracy on the evaluated test images. Every number is in results.json.", ""]
    if exp in ("fig5", "mobilenet"):
        groups = {}
        for name, r in results["models"].items():
            lines += [f"## {name}", ""] + _metric_rows({"baseline": r["baseline"]["metrics"],
                                                        "full method": r["full"]["metrics"]})
            paper = ("paper, ImageNet MobileNet (Table 1): P_l 3.8×, P_p 7.4×" if exp == "mobilenet"
                     else "paper: about 10× and 100×")
            lines += ["", f"Improvement: P_l {_factor(r['improvement']['P_l'])}, P_p {_factor(r['improvement']['P_p'])}"
                      f" ({paper}).", ""]
            sp = r["full"].get("sparsify")
            if sp:
                lines += [f"Sparsity fine-tuning: ANN {_pct(sp['before']['test_accuracy'])} → "
                          f"{_pct(sp['after']['test_accuracy'])}, activation sparsity "
                          f"{_pct(sp['before']['activation_sparsity'])} → {_pct(sp['after']['activation_sparsity'])}, "
                          f"weight sparsity {_pct(sp['after']['weight_sparsity'])} (λ_a {sp['lambda_a']:.3g}, "
                          f"λ_w {sp['lambda_w']:.3g}).", ""]
            groups[name] = {"P_l": r["improvement"]["P_l"], "P_p": r["improvement"]["P_p"]}
            _curves(out, f"curves_{name}", {"baseline": r["baseline"]["curve"], "full method": r["full"]["curve"]},
                    r["baseline"]["metrics"]["ann_accuracy"], name)
        _bars(out / "improvement.png", groups, "improvement factor (baseline / full)",
              "P_l and P_p improvement of the full method (paper Fig. 5)")
        lines += ["![improvement](improvement.png)", ""]
    elif exp == "fig6":
        lines += _metric_rows({k: v["metrics"] for k, v in results["variants"].items()})
        lines += ["", "| variant | P_l factor | P_p factor |", "|---|---|---|"]
        lines += [f"| {k} | {_factor(v['improvement']['P_l'])} | {_factor(v['improvement']['P_p'])} |"
                  for k, v in results["variants"].items()]
        _bars(out / "ablation.png", {k: dict(v["improvement"]) for k, v in results["variants"].items()},
              "improvement over baseline", f"addition / ablation on {results['model']} (paper Fig. 6)")
        _curves(out, "curves", {k: v["curve"] for k, v in results["variants"].items()},
                results["variants"]["baseline"]["metrics"]["ann_accuracy"], results["model"])
        lines += ["", "![ablation](ablation.png)", ""]
    elif exp == "fig4":
        lines += ["| model | P_l (V0 = 0) | P_l (V0 = 0.5) | relative P_l | peak accuracy V0 = 0 / 0.5 |", "|---|---|---|---|---|"]
        for name, r in results["models"].items():
            lines.append(f"| {name} | {_num(r['v0_0']['P_l'], '.3f')} | {_num(r['v0_0.5']['P_l'], '.3f')} | "
                         f"{_num(r['relative_P_l'], '.3f')} | {_pct(r['v0_0']['peak_accuracy'])} / "
                         f"{_pct(r['v0_0.5']['peak_accuracy'])} |")
            _curves(out, f"curves_{name}", r["curves"], r["v0_0"]["ann_accuracy"], name)
        _bars(out / "relative_latency.png", {n: {"P_l(V0=0.5) / P_l(V0=0)": r["relative_P_l"]}
                                             for n, r in results["models"].items()},
              "relative Pareto latency", "high-entropy initialization (paper Fig. 4)", log=False)
        lines += ["", "![relative latency](relative_latency.png)", ""]
    elif exp == "table2":
        b, a, pb, pa = results["before"], results["after"], results["paper"]["before"], results["paper"]["after"]
        sb, sa = results["spikes"]["before"], results["spikes"]["after"]
        steps = results["timesteps"]
        lines += [f"SpiNNaker dynamics (zero reset, 1 refractory step, 1 step synaptic delay), T = {steps}.", "",
                  "| metric | paper before | paper after | ours before | ours after |", "|---|---|---|---|---|",
                  f"| max_t a_t | {_pct(pb['peak_accuracy'])} | {_pct(pa['peak_accuracy'])} | "
                  f"{_pct(b['peak_accuracy'])} (t = {b['peak_timestep']}) | {_pct(a['peak_accuracy'])} (t = {a['peak_timestep']}) |",
                  f"| P_l | {pb['P_l']} | {pa['P_l']} | {_num(b['P_l'], '.3f')} | {_num(a['P_l'], '.3f')} |",
                  f"| P_p, spiking events | {pb['P_p_spikes']:.3g} | {pa['P_p_spikes']:.3g} | {_num(sb['P_p'])} | "
                  f"{_num(sa['P_p'])} |",
                  f"| P_p, synaptic events | – | – | {_num(b['P_p'])} | {_num(a['P_p'])} |",
                  f"| spikes per sample over {steps} steps | – | – | {sb['total']:.4g} | {sa['total']:.4g} |", ""]
        for k, n in results.get("nest", {}).items():
            same = "identical" if n["spike_trains_equal"] and n["predictions_equal"] and n["events_equal"] else "NOT identical"
            lines.append(f"NEST check ({k}, {n['images']} images, {n['timesteps']} steps): spike trains, predictions and "
                         f"events {same} to the NumPy reference simulator; accuracy at the last step "
                         f"{_pct(n['accuracy_nest'])} on NEST, {_pct(n['accuracy_reference'])} reference, "
                         f"{_pct(n['accuracy_ours'])} batched engine (largest per-step accuracy difference of the "
                         f"batched float32 engine from the reference: {n['max_abs_accuracy_difference_batched_engine']:.3g}); "
                         f"events per sample {n['events_per_sample_nest']:.6g} (NEST) vs "
                         f"{n['events_per_sample_reference']:.6g} (reference).")
        _curves(out, "curves", results["curves"], b["ann_accuracy"], f"SpiNNaker dynamics, T = {steps}")
    atomic_write(out / "results.json", json.dumps({"settings": settings, **results}, indent=1, default=float).encode())
    report = out / "report.md"
    atomic_write(report, ("\n".join(lines) + "\n").encode())
    return report
