"""Quality of the language stages on the hand-annotated gold set (tests/data/gold.jsonl):
precision, recall and F1 of entities, triplets and the events of each backend.

    .venv/bin/python bench/quality.py [--backends rules,openai] [--gold PATH]

`rules` always runs. Other backends run when named here or in EVENTPIPE_QUALITY_BACKENDS
(comma-separated) and they can be made: importable and configured by the usual EVENTPIPE_*
settings (EVENTPIPE_LLM_MODEL, EVENTPIPE_LLM_BASE_URL, ...); one that cannot is reported and
skipped. The scoring lives in tests/support/quality.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# The shared test code (corpus, gold set, process measurements) lives in tests/support.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.quality import (
    DEFAULT_GOLD_PATH,
    format_table,
    load_gold,
    make_backend,
    run_quality,
)


def backend_names(argument: str | None) -> list[str]:
    names = ["rules"]
    for source in (argument, os.environ.get("EVENTPIPE_QUALITY_BACKENDS")):
        for name in (source or "").split(","):
            if name.strip() and name.strip() not in names:
                names.append(name.strip())
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", help="events backends besides rules, comma-separated")
    parser.add_argument("--gold", type=Path, default=DEFAULT_GOLD_PATH, help="gold JSONL file")
    args = parser.parse_args()

    backends: dict[str, object] = {}
    for name in backend_names(args.backends):
        try:
            backends[name] = make_backend(name)
        except Exception as exc:  # not installed, not configured, unknown: skip it, say why
            print(f"skipping events backend {name!r}: {type(exc).__name__}: {exc}", file=sys.stderr)
    documents = len(load_gold(args.gold))
    started = time.perf_counter()
    report = run_quality(list(backends), gold_path=args.gold, backends=backends)
    elapsed = time.perf_counter() - started
    print(f"gold: {args.gold} ({documents} documents), scored in {elapsed:.1f} s")
    print(format_table(report.scores))
    for note in report.notes:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
