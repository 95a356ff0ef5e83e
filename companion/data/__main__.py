"""python -m companion.data fetch [NAME ...|all] | verify [NAME ...] | info

Exit status 0 when every required dataset (MNIST) is verified. An optional dataset that
cannot be had here (Fashion-MNIST, Kuzushiji-MNIST) is reported in one line with the command
that gets it, and the notebooks fall back to the others. Damaged files always fail, and so
does a dataset named on the command line that cannot be fetched.
"""
from __future__ import annotations

import argparse
import sys

from companion.data import DATASETS, DataError, DataUnavailable, fetch, source_of, verify
from companion.data.errors import data_dir_meaning
from companion.data.files import FILES, md5, raw_dir, spec

OPTIONAL = "It is optional: the notebooks use the other datasets instead."


def _fetch(name: str, optional: bool) -> bool:
    """Fetch one dataset and report it; True if that counts as a failure."""
    try:
        print(f"{name}: ready ({fetch(name, quiet=True)})")
        return False
    except DataUnavailable as err:
        if optional:
            print(f"{err.summary} {OPTIONAL}")
            return False
        print(f"{name}: FAILED\n{err}", file=sys.stderr)
    except DataError as err:
        print(f"{name}: FAILED\n{err}", file=sys.stderr)
    return True


def _verify(name: str) -> bool:
    """Check one dataset's files and report them; True if that counts as a failure."""
    s, bad = spec(name), verify(name)
    if not bad:
        print(f"{name}: verified ({source_of(name)})")
        return False
    if any(p.kind == "damaged" for p in bad):
        print(f"{name}: DAMAGED", *(f"  {p}" for p in bad), sep="\n")
        print(f"  Delete the damaged files and run `python -m companion.data fetch {name}`.")
        return True
    stage = f"`python -m companion.data fetch {name}` stages it (or says what to do)"
    if s.required:
        print(f"{name}: MISSING, and the course needs it: {stage}.", *(f"  {p}" for p in bad),
              sep="\n")
        return True
    print(f"{name}: not staged; {stage}. {OPTIONAL}")
    return False


def _info(name: str) -> None:
    s = spec(name)
    print(f"{name}: source = {source_of(name)}")
    for f in FILES:
        path = raw_dir(s) / f
        if path.exists():
            print(f"  {f:26s} {path.stat().st_size:>11,d} B  md5 {md5(path)}")
        else:
            print(f"  {f:26s} missing")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m companion.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["fetch", "verify", "info"])
    parser.add_argument("names", nargs="*", help="dataset names, or 'all' (the default)")
    args = parser.parse_args(argv)
    everything = not args.names or args.names == ["all"]
    try:
        names = list(DATASETS) if everything else [spec(n).name for n in args.names]
    except DataError as err:
        print(err, file=sys.stderr)
        return 2
    print(f"<data> below is {data_dir_meaning()}")
    failed = False
    for name in names:
        if args.command == "fetch":
            failed |= _fetch(name, optional=everything and not spec(name).required)
        elif args.command == "verify":
            failed |= _verify(name)
        else:
            _info(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
