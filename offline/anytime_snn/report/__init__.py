"""Plots and reports (the paper's accuracy-vs-time and accuracy-vs-events views)."""

from .plots import plot_curves
from .report import load_evaluation, load_evaluations, write_report

__all__ = ["load_evaluation", "load_evaluations", "plot_curves", "write_report"]
