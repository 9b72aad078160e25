"""Combine ``evaluation.json`` records (written by ``anytime-snn evaluate``) into one markdown report.

The report has a metrics table (peak and final accuracy, P_l, P_p, M_e, events per inference and,
with several runs, the improvement factors of P_l and P_p over the first run, as in the paper's
Figure 5), a threshold table (time and cumulative synaptic events to 90/95/99 % of a_max), and the
combined accuracy-vs-time and accuracy-vs-events plots of :func:`~anytime_snn.report.plots.plot_curves`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .plots import plot_curves

_REQUIRED = ("summary", "accuracy", "events_per_step")
_SUMMARY_KEYS = ("timesteps", "a_max", "peak_accuracy", "peak_timestep", "final_accuracy", "P_l", "P_p", "M_e",
                 "events_per_sample", "thresholds")


@dataclass
class EvaluationRun:
    label: str
    path: Path
    record: dict

    @property
    def summary(self) -> dict:
        return self.record["summary"]

    @property
    def accuracy(self) -> np.ndarray:
        return np.asarray(self.record["accuracy"], np.float64)

    @property
    def events(self) -> np.ndarray:
        return np.asarray(self.record["events_per_step"], np.float64)


def _resolve(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / "evaluation.json"
    if not p.is_file():
        raise ConfigError(f"{path}: no evaluation record (expected a file, or a directory with evaluation.json "
                          f"written by 'anytime-snn evaluate')")
    return p


def load_evaluation(path: str | Path, label: str | None = None) -> EvaluationRun:
    """Read one evaluation record (a JSON file or a run directory holding evaluation.json), checked."""
    p = _resolve(path)
    try:
        record = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{p} is not a readable JSON evaluation record: {e}") from None
    if not isinstance(record, dict):
        raise ConfigError(f"{p}: expected a JSON object, got {type(record).__name__}")
    missing = [k for k in _REQUIRED if k not in record]
    missing += [f"summary.{k}" for k in _SUMMARY_KEYS if k not in record.get("summary", {})]
    if missing:
        raise ConfigError(f"{p} is not an 'anytime-snn evaluate' record: missing {missing}")
    if len(record["accuracy"]) != len(record["events_per_step"]) or not record["accuracy"]:
        raise ConfigError(f"{p}: 'accuracy' and 'events_per_step' must be non-empty and equally long")
    if label is None:
        label = Path(str(record.get("model") or p.parent.name)).name or p.parent.name
    return EvaluationRun(label=label, path=p, record=record)


def load_evaluations(paths, labels: list[str] | None = None) -> list[EvaluationRun]:
    """Several records; labels default to the model names, made unique with the run directory."""
    if not paths:
        raise ConfigError("give at least one evaluation record or run directory")
    if labels is not None and len(labels) != len(paths):
        raise ConfigError(f"{len(labels)} labels given for {len(paths)} runs")
    runs = [load_evaluation(p, None if labels is None else labels[i]) for i, p in enumerate(paths)]
    if labels is None:
        names = [r.label for r in runs]
        for r in runs:
            if names.count(r.label) > 1:
                r.label = f"{r.label} ({r.path.parent.name})"
        seen: dict[str, int] = {}
        for r in runs:
            seen[r.label] = seen.get(r.label, 0) + 1
            if seen[r.label] > 1:
                r.label = f"{r.label} #{seen[r.label]}"
    return runs


def _num(v, fmt: str = ".4g") -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return format(v, fmt)


def _pct(v) -> str:
    return "—" if v is None else f"{v * 100:.2f} %"


def metrics_table(runs: list[EvaluationRun]) -> str:
    base = runs[0].summary
    several = len(runs) > 1
    head = ["run", "data", "T", "a_max", "peak accuracy (t)", "final accuracy", "P_l", "P_p", "M_e",
            "events / inference"] + (["P_l improvement", "P_p improvement"] if several else [])
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        s, rec = r.summary, r.record
        data = f"{rec.get('dataset', '?')} {rec.get('split', '')} ({rec.get('samples', '?')})".strip()
        cells = [r.label, data, str(s["timesteps"]), _pct(s["a_max"]),
                 f"{_pct(s['peak_accuracy'])} ({s['peak_timestep']})", _pct(s["final_accuracy"]),
                 _num(s["P_l"], ".3f"), _num(s["P_p"]), _num(s["M_e"], ".4f"), _num(s["events_per_sample"])]
        if several:
            cells += [_ratio(base["P_l"], s["P_l"]), _ratio(base["P_p"], s["P_p"])]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _ratio(base: float, value: float) -> str:
    """Improvement factor base / value (> 1: better); not meaningful when either is <= 0."""
    if base is None or value is None or base <= 0 or value <= 0:
        return "—"
    return f"{base / value:.3g}×"


def threshold_table(runs: list[EvaluationRun]) -> str:
    fractions = sorted({f for r in runs for f in r.summary["thresholds"]}, key=float)
    head = ["run"] + [f"t to {float(f) * 100:g} %" for f in fractions] + [f"events to {float(f) * 100:g} %"
                                                                         for f in fractions]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        th = r.summary["thresholds"]
        times = [_num((th.get(f) or {}).get("timesteps"), "d") for f in fractions]
        events = [_num((th.get(f) or {}).get("events")) for f in fractions]
        rows.append("| " + " | ".join([r.label] + times + events) + " |")
    return "\n".join(rows)


def write_report(paths, out_dir: str | Path, *, labels: list[str] | None = None, title: str | None = None) -> Path:
    """Write ``out_dir``/report.md, report.json and the two combined plots; return the report's path."""
    runs = load_evaluations(list(paths), labels)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    a_maxes = {round(r.summary["a_max"], 12) for r in runs}
    a_max = runs[0].summary["a_max"] if len(a_maxes) == 1 else None
    title = title or ("SNN evaluation: " + ", ".join(r.label for r in runs))
    plots = plot_curves({r.label: (r.accuracy, r.events) for r in runs}, out, a_max=a_max, title=title)
    lines = [f"# {title}", ""]
    lines += [f"{len(runs)} evaluation record(s). a_t is the accuracy after t timesteps, e_t the mean synaptic "
              "events per sample at step t; P_l = Σ_t (a_max − a_t), P_p = Σ_t e_t (a_max − a_t) "
              "(paper eq. 4–5), "
              "M_e = min_t (1 − a_t); events / inference = Σ_t e_t.", ""]
    if a_max is None:
        lines += ["The runs use different a_max (each its own ANN accuracy); the plots show no ANN line.", ""]
    if len(runs) > 1:
        lines += [f"Improvement factors are {runs[0].label}'s P_l and P_p divided by each run's (> 1: better).", ""]
    lines += ["## Metrics", "", metrics_table(runs), "", "## Time and synaptic events to a fraction of a_max", "",
              threshold_table(runs), "", "## Curves", ""]
    lines += [f"![{p.stem.replace('_', ' ')}]({p.name})" for p in plots] + [""]
    lines += ["## Sources", ""] + [f"- {r.label}: `{r.path}` (model `{r.record.get('model', '?')}`)" for r in runs]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    (out / "report.json").write_text(json.dumps(
        {"title": title, "runs": [{"label": r.label, "source": str(r.path), "model": r.record.get("model"),
                                   "summary": r.summary} for r in runs],
         "plots": [p.name for p in plots]}, indent=1))
    return report
