"""Accuracy against time and against cumulative synaptic events (paper Figure 1c), as PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], out_dir: str | Path, *,
                a_max: float | None = None, title: str = "") -> list[Path]:
    """``curves`` maps a label to (accuracy (T,), events per step (T,)). Writes two PNGs; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, xlabel in [("accuracy_vs_time", "timestep"), ("accuracy_vs_events", "cumulative synaptic events per sample")]:
        fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
        for label, (acc, events) in curves.items():
            acc = np.asarray(acc) * 100
            x = np.arange(1, acc.size + 1) if name == "accuracy_vs_time" else np.cumsum(events)
            ax.plot(x, acc, label=label)
        if a_max is not None:
            ax.axhline(a_max * 100, color="k", ls="--", lw=1, label=f"ANN {a_max * 100:.2f} %")
        if name == "accuracy_vs_events":
            ax.set_xscale("symlog", linthresh=1e3)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        if title:
            ax.set_title(title)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
