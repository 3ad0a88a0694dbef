"""Storyline clustering per document from 1,000 to 100,000 documents: time and memory per
document should stay flat (no all-pairs work), and the end-of-batch step short.

    .venv/bin/python bench/storyline_scaling.py [--sizes 1000,10000,100000]

Synthetic profiles: stories of 4-16 documents, each document drawing words and entity keys
from its story's own vocabulary and from a vocabulary shared by all. Printed per size: ms
per document for `add` (the online work as documents are saved), seconds of `finish` (the
end-of-batch step), the Python memory the clustering holds per document (tracemalloc), and
ratios against the smallest size, measured in the same run.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc
from collections import Counter

from eventpipe.linking.clustering import OnlineStorylines, Profile

COMMON = [f"common{i}" for i in range(3000)]


def profiles(n: int, seed: int = 7) -> list[Profile]:
    rng = random.Random(seed)
    out: list[Profile] = []
    story = 0
    while len(out) < n:
        words = [f"s{story}w{i}" for i in range(40)]
        keys = [f"s{story}e{i}" for i in range(6)]
        for _ in range(rng.randint(4, 16)):
            drawn = rng.sample(words, 20) + rng.sample(COMMON, 40)
            out.append(Profile(f"d{len(out)}", Counter(drawn), Counter(rng.sample(keys, 3))))
        story += 1
    rng.shuffle(out)  # stories interleave, as in a stream
    return out[:n]


def measure(n: int) -> tuple[float, float, float, int]:
    docs = profiles(n)
    tracemalloc.start()
    clustering = OnlineStorylines()
    started = time.perf_counter()
    for profile in docs:
        clustering.add(profile)
    add_s = time.perf_counter() - started
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    started = time.perf_counter()
    groups = clustering.finish()
    finish_s = time.perf_counter() - started
    return add_s * 1000 / n, finish_s, held / n, sum(1 for g in groups if len(g) > 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    print("documents  add ms/doc  finish s  bytes/doc  storylines   ratio ms/doc  bytes/doc")
    base: tuple[float, float] | None = None
    for n in sizes:
        ms, finish_s, per_doc, stories = measure(n)
        base = base or (ms, per_doc)
        print(f"{n:9d}  {ms:10.3f}  {finish_s:8.2f}  {per_doc:9.0f}  {stories:10d}   "
              f"{ms / base[0]:12.2f}  {per_doc / base[1]:9.2f}", flush=True)
    print("(shared machine: other work ran at the same time; compare the ratios)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
