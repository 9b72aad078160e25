"""Combine one or more SNN evaluations into one markdown report with tables and combined plots.

  anytime-snn evaluate models/default --out runs/eval/default
  anytime-snn evaluate runs/sparse/snn --out runs/eval/sparse
  anytime-snn report runs/eval/default runs/eval/sparse --out runs/report

Each argument is a run directory holding evaluation.json (written by `anytime-snn evaluate`) or such
a JSON file. Writes DIR/report.md (a metrics table: peak and final accuracy, P_l, P_p, M_e, synaptic
events per inference and, for several runs, the improvement factors of P_l and P_p over the first
run; a table of time and events to 90/95/99 % of a_max), DIR/report.json and the combined plots
DIR/accuracy_vs_time.png and DIR/accuracy_vs_events.png.
"""

from __future__ import annotations

from pathlib import Path

HELP = "combine evaluation.json records into a markdown report with tables and combined plots"


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR_OR_JSON",
                        help="evaluation.json files or directories that hold one (the first is the baseline)")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for report.md and the plots")
    parser.add_argument("--labels", nargs="+", help="one name per run (default: the model names)")
    parser.add_argument("--title", help="report title")


def run(args) -> int:
    from ..report.report import write_report

    path = write_report(args.runs, args.out, labels=args.labels, title=args.title)
    print(f"wrote {path} with {len(args.runs)} run(s) and plots in {Path(args.out)}")
    return 0
