"""Write a synthetic news corpus as JSONL.

python examples/generate_sample.py OUT.jsonl --count 250 --seed 7
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The generator is test code (tests/support), not part of the installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.corpus import generate_documents, write_jsonl


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", help="path of the JSONL file to write")
    parser.add_argument("--count", type=int, default=250, help="number of documents")
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error("--count must be >= 0")
    written = write_jsonl(generate_documents(args.count, seed=args.seed), args.out)
    print(f"wrote {written} documents to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
