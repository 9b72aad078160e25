"""Plots and reports (the paper's accuracy-vs-time and accuracy-vs-events views)."""

from .plots import plot_curves

__all__ = ["plot_curves"]
