"""Replay corpus files through a harness without atheris (e.g. under coverage.py, or to debug a crash).

    .venv/bin/python fuzz/replay.py <target> <file-or-dir>...
    .venv/bin/python -m coverage run --include='*/image_convert.py' fuzz/replay.py image_convert DIR && \\
        .venv/bin/python -m coverage report -m

Prints the number of inputs replayed; an input that breaks the harness's property raises as usual.
"""

from __future__ import annotations

import sys
from pathlib import Path

import _common  # noqa: F401  (import paths)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    harness = __import__(f"fuzz_{argv[0]}")
    files = []
    for arg in map(Path, argv[1:]):
        files += sorted(p for p in arg.iterdir() if p.is_file()) if arg.is_dir() else [arg]
    for path in files:
        harness.test_one_input(path.read_bytes())
    print(f"{argv[0]}: replayed {len(files)} inputs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
