"""The ``anytime-snn`` command.

Each subcommand is a module in :mod:`anytime_snn.commands` exposing ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. User mistakes raise ``ConfigError``/``DataError``/
``BundleError`` and are printed as one-line errors (exit 2), not tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback

from . import __version__, commands
from .errors import BundleError, ConfigError, DataError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anytime-snn",
        description="Spike-based anytime perception: train, sparsify, convert, optimize, evaluate and export SNNs.",
    )
    parser.add_argument("--version", action="version", version=f"anytime-snn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        p = sub.add_parser(info.name.replace("_", "-"), help=module.HELP, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what was parsed, for records of the command
    try:
        code = int(args._run(args) or 0)
    except (ConfigError, DataError, BundleError, FileNotFoundError) as e:
        print(f"anytime-snn {args.command}: error: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print(f"anytime-snn {args.command}: interrupted", file=sys.stderr)
        code = 130
    except Exception:
        if "mpi4py.MPI" in sys.modules:  # under mpiexec: the other ranks must not wait for this one forever
            traceback.print_exc()
            _abort_job_on_failure(1)
        raise
    _abort_job_on_failure(code)
    return code


def _abort_job_on_failure(code: int) -> None:
    if code and "mpi4py.MPI" in sys.modules:
        from .optimize.parallel import abort_job_on_failure

        abort_job_on_failure(code)


if __name__ == "__main__":
    sys.exit(main())
