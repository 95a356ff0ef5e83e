"""python -m companion.data fetch [NAME ...|all] | verify [NAME ...] | info"""
from __future__ import annotations

import argparse
import sys

from companion import settings
from companion.data import DATASETS, DataError, fetch, source_of, verify
from companion.data.sources import FILES, md5, raw_dir, spec


def _names(names: list[str]) -> list[str]:
    return list(DATASETS) if not names or names == ["all"] else [spec(n).name for n in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m companion.data", description=__doc__)
    parser.add_argument("command", choices=["fetch", "verify", "info"])
    parser.add_argument("names", nargs="*", help="dataset names, or 'all' (the default)")
    parser.add_argument("--allow-missing", action="append", default=[], metavar="NAME",
                        help="fetch: report NAME as unavailable instead of failing")
    args = parser.parse_args(argv)
    try:
        names = _names(args.names)
    except DataError as err:
        print(err, file=sys.stderr)
        return 2
    failed = False
    print(f"data directory: {settings.data_dir()}")
    for name in names:
        if args.command == "fetch":
            try:
                print(f"{name}: ready ({fetch(name, quiet=True)})")
            except DataError as err:
                missing_ok = name in [spec(n).name for n in args.allow_missing]
                print(f"{name}: {'unavailable' if missing_ok else 'FAILED'}\n{err}",
                      file=sys.stdout if missing_ok else sys.stderr)
                failed |= not missing_ok
        elif args.command == "verify":
            bad = verify(name)
            print(f"{name}: {'verified' if not bad else 'NOT verified'}")
            for line in bad:
                print(f"  {line}")
            failed |= bool(bad)
        else:
            s = spec(name)
            print(f"{name}: source = {source_of(name)}")
            for i, f in enumerate(FILES):
                path = raw_dir(s) / f
                if path.exists():
                    print(f"  {f:26s} {path.stat().st_size:>11,d} B  md5 {md5(path)}")
                else:
                    print(f"  {f:26s} missing")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
