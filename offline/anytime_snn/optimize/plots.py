"""Loss against objective calls, per phase (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_loss(history: list[dict], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    loss = np.array([e["loss"] for e in history])
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(np.arange(loss.size), loss, ".", ms=2, alpha=0.4, label="evaluated")
    ax.plot(np.arange(loss.size), np.minimum.accumulate(loss), "-", label="best so far")
    lo, hi = np.percentile(loss, [0, 95])
    pad = 0.05 * (hi - lo) + 1e-12
    ax.set_ylim(lo - pad, hi + pad)
    phases = [e["phase"] for e in history]
    for i, name in enumerate(phases):
        if i and name != phases[i - 1]:  # call 0 is the start point
            ax.axvline(i, color="k", lw=0.5)
            ax.text(i, hi + pad, f" {name}", fontsize=7, va="top")
    ax.set_xlabel("objective call")
    ax.set_ylabel("L_SNN")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
