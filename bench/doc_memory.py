"""Peak memory of the ner and dp stages for one long document, by document length: the
measurement behind EVENTPIPE_MAX_DOCUMENT_CHARS and the chart's memory limits of ner and dp.

Each (stage, length) runs in a fresh process: load the pipeline as the service does, note the
resident size, process one document of that many characters (news-like sentences from the
synthetic corpus, joined), note the peak. Prints the model's resident size, the peak per
length, the growth per 100,000 characters (least squares) and the longest document that fits
a given memory limit.

    .venv/bin/python bench/doc_memory.py --lengths 25000,50000,100000,200000 --limit-mib 2048
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

# The shared test code (the corpus) lives in tests/support.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

ROOT = Path(__file__).resolve().parents[1]


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def measure(stage: str, length: int) -> dict[str, float]:
    """Runs in the child process."""
    from eventpipe.models import DocumentMessage
    from eventpipe.nlp.model import load_pipeline
    from support.corpus import generate_documents

    if stage == "dp":
        from services.dp.service import make_process
    else:
        from services.ner.service import make_process
    process = make_process(load_pipeline(None))
    # Warm up on a short document, as a running service would have.
    warm = DocumentMessage(job_id="j", batch_id="b", doc_id="w", text="Alice met Bob in Paris.")
    process([warm])
    loaded = rss_mib()
    text = ""
    for doc in generate_documents(max(1, length // 500) + 50, seed=3):
        text += doc["text"] + "\n\n"
        if len(text) >= length:
            break
    text = text[:length]
    process([DocumentMessage(job_id="j", batch_id="b", doc_id="d", text=text)])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"loaded_mib": loaded, "peak_mib": peak, "chars": len(text)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stages", default="ner,dp")
    p.add_argument("--lengths", default="25000,50000,100000,200000")
    p.add_argument("--limit-mib", type=float, default=2048.0,
                   help="memory limit to derive the longest document for")
    p.add_argument("--headroom-mib", type=float, default=256.0,
                   help="kept free for a batch of ordinary documents and the Kafka client")
    p.add_argument("--child", nargs=2, metavar=("STAGE", "LENGTH"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]))))
        return
    lengths = [int(n) for n in args.lengths.split(",")]
    print("shared machine: memory figures are per process and not disturbed by other load")
    for stage in args.stages.split(","):
        rows = []
        for length in lengths:
            out = subprocess.run([sys.executable, __file__, "--child", stage, str(length)],
                                 capture_output=True, text=True, check=True, cwd=ROOT)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"{stage}: {r['chars']:>8,.0f} chars  model loaded {r['loaded_mib']:6.0f} MiB  "
                  f"peak {r['peak_mib']:6.0f} MiB")
        xs = [r["chars"] for r in rows]
        ys = [r["peak_mib"] for r in rows]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = (sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
                 / sum((x - mx) ** 2 for x in xs))
        base = my - slope * mx
        fits = (args.limit_mib - args.headroom_mib - base) / slope if slope > 0 else float("inf")
        print(f"{stage}: peak ~= {base:.0f} MiB + {slope * 100_000:.0f} MiB per 100,000 chars; "
              f"a {args.limit_mib:.0f} MiB limit with {args.headroom_mib:.0f} MiB headroom "
              f"holds {fits:,.0f} chars")


if __name__ == "__main__":
    main()
