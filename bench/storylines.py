"""Storylines, event triggers and event links of eventpipe on real labelled news, against
baselines measured in the same run.

    .venv/bin/python bench/storylines.py DATA_DIR [--topics 28-36] [--backend rules]
                                                 [--limit N] [--via-run]

DATA_DIR holds `documents.jsonl`, `stories.jsonl` and `events.jsonl` in the format of the
ECB+ development split (its README defines every measure printed here). The documents go
through the real pipeline functions in this process (the NER, DP and events stages'
`make_process`, the sink's record, the linker's batch step) or, with `--via-run`, through
`eventpipe run` with its broker and services. Printed:

- storylines: B-cubed P/R/F1 against the gold stories (and against topics), for eventpipe and
  for the baseline: TF-IDF of whole documents (raw counts, smooth idf, l2), average linkage,
  cosine distance 0.9; and every document alone;
- event triggers: P/R/F1, overlap and exact, for non-reporting, reporting and all ACTION_*
  mentions, and the share of predicted events marked reporting;
- event links: pairwise P/R/F1 against the gold cross-document chains, for eventpipe and for
  the lemma baseline (same trigger lemma, both documents in one baseline cluster).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from spacy.lang.en.stop_words import STOP_WORDS

from eventpipe.checkpoint.model import Checkpoint, CheckpointMetadata
from eventpipe.linking.batch import compute
from eventpipe.models import DocumentMessage, JobStatus, job_id_for
from eventpipe.nlp.events import get_backend
from eventpipe.nlp.model import load_pipeline
from eventpipe.settings import Settings
from eventpipe.storage.base import ResultRecord
from services.dp.service import make_process as dp_process
from services.llm.service import make_process as events_process
from services.ner.service import make_process as ner_process
from services.sink.service import result_record

BATCH = "bench_storylines"
_SK_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def topic_filter(spec: str | None) -> set[int] | None:
    if not spec:
        return None
    wanted: set[int] = set()
    for part in spec.split(","):
        low, _, high = part.partition("-")
        wanted.update(range(int(low), int(high or low) + 1))
    return wanted


# --- running eventpipe --------------------------------------------------------------------


def run_in_process(docs: list[dict[str, Any]], backend: str) -> tuple[list[ResultRecord],
                                                                      dict[str, Any], float]:
    """The documents through the stages' own process functions, then the batch step."""
    settings = Settings()
    nlp = load_pipeline(settings.spacy_model)
    stages = [ner_process(nlp), dp_process(nlp), events_process(get_backend(backend, settings))]
    job = job_id_for(BATCH)
    messages = [DocumentMessage(job_id=job, batch_id=BATCH, doc_id=d["id"], text=d["text"],
                                meta={k: v for k, v in d.items() if k not in ("id", "text")})
                for d in docs]
    started = time.perf_counter()
    records: list[ResultRecord] = []
    for chunk in range(0, len(messages), 32):
        batch: Sequence[Any] = messages[chunk:chunk + 32]
        for process in stages:
            batch = process(batch)
            failed = [r for r in batch if isinstance(r, Exception)]
            if failed:
                raise RuntimeError(f"a stage failed a document: {failed[0]!r}")
        records.extend(result_record(d, "2026-01-01T00:00:00Z") for d in batch)
    stages_s = time.perf_counter() - started
    now = "2026-01-01T00:00:00Z"
    checkpoint = Checkpoint(
        job_id=job, batch_id=BATCH, status=JobStatus.RUNNING, total_documents=len(records),
        processed_documents=len(records), failed_documents=0,
        processed_doc_ids=[r["id"] for r in records], failed_doc_ids=[], created_at=now,
        updated_at=now, metadata=CheckpointMetadata(started_at=now))
    started = time.perf_counter()
    outputs = compute(settings, checkpoint, records)
    batch_s = time.perf_counter() - started
    print(f"pipeline in process: {len(records)} documents, stages {stages_s:.1f} s, "
          f"batch-level step {batch_s:.2f} s")
    return records, {"links": outputs.links, "storylines": outputs.storylines}, batch_s


def run_via_cli(docs: list[dict[str, Any]]) -> tuple[list[ResultRecord], dict[str, Any], float]:
    """The documents through `eventpipe run` (embedded broker, every service)."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        source = data / "input.jsonl"
        source.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
        started = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "eventpipe"), "run", str(source),
                        "--batch-id", BATCH, "--data-dir", str(data / "out")], check=True,
                       env={**os.environ, "EVENTPIPE_PROGRESS_INTERVAL_S": "30"})
        elapsed = time.perf_counter() - started
        out = data / "out"
        records = read_jsonl(out / f"extracted_events_{BATCH}.jsonl")
        batch = {"links": [], "storylines": []}
        for name in ("links", "storylines"):
            found = sorted(out.glob(f"*{name}*{BATCH}*.jsonl")) + sorted(
                out.glob(f"*{BATCH}*{name}*.jsonl"))
            if found:
                batch[name] = read_jsonl(found[0])
        print(f"eventpipe run: {len(records)} documents in {elapsed:.1f} s")
        return records, batch, elapsed


# --- storylines ---------------------------------------------------------------------------


def clusters_from_storylines(doc_ids: list[str], storylines: list[dict[str, Any]]
                             ) -> dict[str, str]:
    """Each document to the storyline holding most of its events (ties: the first), or to a
    cluster of its own."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for s in storylines:
        events = Counter(e["doc_id"] for e in s.get("events", []))
        for doc in s.get("doc_ids", []):
            counts[doc][s["storyline_id"]] += events.get(doc, 0)
    return {d: (counts[d].most_common(1)[0][0] if counts[d] else f"alone:{d}")
            for d in doc_ids}


def bcubed(predicted: dict[str, str], gold: dict[str, str]) -> tuple[float, float, float]:
    by_pred: dict[str, set[str]] = defaultdict(set)
    by_gold: dict[str, set[str]] = defaultdict(set)
    for d in gold:
        by_pred[predicted[d]].add(d)
        by_gold[gold[d]].add(d)
    p = r = 0.0
    for d in gold:
        c, g = by_pred[predicted[d]], by_gold[gold[d]]
        both = len(c & g)
        p += both / len(c)
        r += both / len(g)
    p, r = p / len(gold), r / len(gold)
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def tfidf_baseline(docs: list[dict[str, Any]], distance: float = 0.9, plain: bool = True
                   ) -> dict[str, str]:
    """Whole-document TF-IDF and average linkage cut at `distance`. `plain`: scikit-learn's
    defaults (lowercase, 2+ character tokens, raw counts, idf ln((1+n)/(1+df))+1, l2); else
    without English stop words (spaCy's list) and with sublinear counts (1 + ln tf)."""
    tokens = [[t for t in _SK_TOKEN.findall(d["text"].lower())
               if plain or t not in STOP_WORDS] for d in docs]
    vocab = {t: i for i, t in enumerate(sorted({t for ts in tokens for t in ts}))}
    counts = np.zeros((len(docs), len(vocab)))
    for row, ts in enumerate(tokens):
        for t in ts:
            counts[row, vocab[t]] += 1
    df = (counts > 0).sum(axis=0)
    if not plain:
        counts = np.where(counts > 0, 1.0 + np.log(np.maximum(counts, 1.0)), 0.0)
    matrix = counts * (np.log((1 + len(docs)) / (1 + df)) + 1)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    labels = average_linkage(1.0 - matrix @ matrix.T, distance)
    return {d["id"]: f"b{labels[i]}" for i, d in enumerate(docs)}


def average_linkage(dist: np.ndarray, cut: float) -> list[int]:
    """Agglomerative clustering, average linkage, merging while the closest pair of clusters
    is nearer than `cut` (scikit-learn's distance_threshold semantics)."""
    n = len(dist)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    d = dist.astype(float).copy()
    np.fill_diagonal(d, np.inf)
    active = np.ones(n, dtype=bool)
    while active.sum() > 1:
        masked = np.where(active[:, None] & active[None, :], d, np.inf)
        i, j = divmod(int(np.argmin(masked)), n)
        if masked[i, j] >= cut:
            break
        ni, nj = len(members[i]), len(members[j])
        merged = (d[i] * ni + d[j] * nj) / (ni + nj)
        d[i], d[:, i] = merged, merged
        d[i, i] = np.inf
        active[j] = False
        d[j], d[:, j] = np.inf, np.inf
        members[i].extend(members.pop(j))
    label = [0] * n
    for k, (_, group) in enumerate(sorted(members.items())):
        for m in group:
            label[m] = k
    return label


# --- triggers -----------------------------------------------------------------------------

REPORTING_WORDS = frozenset({"say", "said", "says", "saying", "tell", "told", "report",
                             "reported", "announce", "announced", "announces"})


def group_of(kind: str) -> str | None:
    if not kind.startswith("ACTION_"):
        return None
    return "reporting" if kind == "ACTION_REPORTING" else "non-reporting"


def _parts(mention: dict[str, Any]) -> list[tuple[int, int]]:
    return [tuple(p) for p in mention.get("parts") or [(mention["start"], mention["end"])]]


def _overlaps(span: tuple[int, int], mention: dict[str, Any]) -> bool:
    return any(span[0] < e and s < span[1] for s, e in _parts(mention))


def _inside(start: int, annotated: list[list[int]]) -> bool:
    return any(s <= start < e for s, e in annotated)


def predicted_spans(record: ResultRecord) -> list[tuple[int, tuple[int, int], bool]]:
    """(event index, trigger span, marked reporting) for events that carry offsets; older
    events without offsets are found by their trigger text in their sentence's order."""
    out = []
    text = record.get("text", "")
    for i, event in enumerate(record.get("events") or []):
        start, end = event.get("start_char"), event.get("end_char")
        if start is None or end is None:
            found = text.find(event.get("trigger", "")) if event.get("trigger") else -1
            if found < 0:
                continue
            start, end = found, found + len(event["trigger"])
        reporting = bool(event.get("reporting", event.get("type") == "statement"))
        out.append((i, (int(start), int(end)), reporting))
    return out


def trigger_scores(records: list[ResultRecord], gold: dict[str, dict[str, Any]]
                   ) -> dict[str, dict[str, tuple[float, float, float]]]:
    tallies: dict[str, dict[str, list[int]]] = {
        g: {m: [0, 0, 0, 0] for m in ("overlap", "exact")}
        for g in ("non-reporting", "reporting", "all")}
    for record in records:
        doc = gold[record["id"]]
        annotated = doc["annotated_sentences"]
        mentions = [m for m in doc["events"] if m["in_annotated_sentence"]]
        preds = [span for _, span, _ in predicted_spans(record) if _inside(span[0], annotated)]
        for group in tallies:
            def in_group(m: dict[str, Any], group: str = group) -> bool:
                g = group_of(m["type"])
                return g is not None and (group == "all" or g == group)
            targets = [m for m in mentions if in_group(m)]
            for mode in ("overlap", "exact"):
                def hit(span: tuple[int, int], m: dict[str, Any], mode: str = mode) -> bool:
                    return (span == (m["start"], m["end"]) if mode == "exact"
                            else _overlaps(span, m))
                t = tallies[group][mode]
                for span in preds:
                    matched = [m for m in mentions if hit(span, m)]
                    if matched and not any(in_group(m) for m in matched):
                        continue  # matches only mentions outside the group: left out
                    t[1] += 1
                    t[0] += bool(matched)
                t[3] += len(targets)
                t[2] += sum(1 for m in targets if any(hit(span, m) for span in preds))
    return {g: {mode: _prf(*t) for mode, t in modes.items()} for g, modes in tallies.items()}


def _prf(tp_pred: int, n_pred: int, tp_gold: int, n_gold: int) -> tuple[float, float, float]:
    p = tp_pred / n_pred if n_pred else 0.0
    r = tp_gold / n_gold if n_gold else 0.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


# --- event links --------------------------------------------------------------------------


def mapped_mentions(records: list[ResultRecord], gold: dict[str, dict[str, Any]]
                    ) -> dict[tuple[str, int], tuple[str, int]]:
    """(doc, event index) -> (doc, gold mention index) of the annotated mention it overlaps."""
    mapping = {}
    for record in records:
        doc = gold[record["id"]]
        for i, span, _ in predicted_spans(record):
            if not _inside(span[0], doc["annotated_sentences"]):
                continue
            for k, m in enumerate(doc["events"]):
                if m["in_annotated_sentence"] and _overlaps(span, m):
                    mapping[(record["id"], i)] = (record["id"], k)
                    break
    return mapping


def link_scores(pairs: Iterable[tuple[tuple[str, int], tuple[str, int]]],
                mapping: dict[tuple[str, int], tuple[str, int]],
                gold: dict[str, dict[str, Any]]) -> tuple[float, float, float]:
    def chain(m: tuple[str, int]) -> str | None:
        value: str | None = gold[m[0]]["events"][m[1]]["chain"]
        return value
    predicted = set()
    for a, b in pairs:
        if a in mapping and b in mapping and a[0] != b[0]:
            ma, mb = mapping[a], mapping[b]
            predicted.add((min(ma, mb), max(ma, mb)))
    correct = sum(1 for a, b in predicted if chain(a) is not None and chain(a) == chain(b))
    by_chain: dict[str, Counter[str]] = defaultdict(Counter)
    for m in set(mapping.values()):
        if chain(m) is not None:
            by_chain[str(chain(m))][m[0]] += 1
    total = 0
    for docs in by_chain.values():
        n = sum(docs.values())
        total += (n * n - sum(c * c for c in docs.values())) // 2
    return _prf(correct, len(predicted), correct, total)


def lemma_baseline_pairs(records: list[ResultRecord], clusters: dict[str, str]
                         ) -> list[tuple[tuple[str, int], tuple[str, int]]]:
    groups: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
    for record in records:
        for i, event in enumerate(record.get("events") or []):
            lemma = str(event.get("lemma") or event.get("trigger", "")).lower()
            groups[(clusters[record["id"]], lemma)].append((record["id"], i))
    pairs = []
    for members in groups.values():
        for n, a in enumerate(members):
            pairs.extend((a, b) for b in members[n + 1:] if a[0] != b[0])
    return pairs


# --- report -------------------------------------------------------------------------------


def fmt(prf: tuple[float, float, float]) -> str:
    return f"P {prf[0]:.3f}  R {prf[1]:.3f}  F1 {prf[2]:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--topics", help="only these topics, e.g. 28-36 or 28,30-33")
    parser.add_argument("--backend", default="rules", help="events backend (in process)")
    parser.add_argument("--limit", type=int, help="only the first N documents (a sample)")
    parser.add_argument("--via-run", action="store_true", help="through `eventpipe run`")
    args = parser.parse_args()
    try:
        docs = read_jsonl(args.data_dir / "documents.jsonl")
        stories = {s["id"]: s for s in read_jsonl(args.data_dir / "stories.jsonl")}
        gold = {g["id"]: g for g in read_jsonl(args.data_dir / "events.jsonl")}
    except (OSError, ValueError) as exc:
        print(f"cannot read {args.data_dir}: {exc}", file=sys.stderr)
        return 2
    wanted = topic_filter(args.topics)
    if wanted is not None:
        docs = [d for d in docs if int(stories[d["id"]]["topic"].lstrip("T")) in wanted]
    docs = docs[:args.limit] if args.limit else docs
    print(f"{len(docs)} documents, {len({stories[d['id']]['story'] for d in docs})} stories "
          f"({args.data_dir}{', topics ' + args.topics if args.topics else ''})")
    if args.via_run:
        records, outputs, _ = run_via_cli(docs)
    else:
        records, outputs, _ = run_in_process(docs, args.backend)
    ids = [d["id"] for d in docs]
    story = {d: stories[d]["story"] for d in ids}
    topic = {d: stories[d]["topic"] for d in ids}
    ours = clusters_from_storylines(ids, outputs["storylines"])
    started = time.perf_counter()
    base = tfidf_baseline(docs)
    base_s = time.perf_counter() - started
    content = tfidf_baseline(docs, plain=False)
    alone = {d: d for d in ids}
    print("\nstorylines (B-cubed over documents)          stories                   topics")
    for name, clusters in (("eventpipe", ours), ("tfidf avg-link 0.9", base),
                           ("  (no stop w., 1+ln tf)", content),
                           ("every document alone", alone)):
        n = len(set(clusters.values()))
        print(f"  {name:21s} {n:4d} clusters  {fmt(bcubed(clusters, story))}   "
              f"F1 {bcubed(clusters, topic)[2]:.3f}")
    print(f"  (baseline clustering {base_s:.2f} s)")

    scores = trigger_scores(records, gold)
    print("\nevent triggers (annotated sentences)")
    for group in ("non-reporting", "reporting", "all"):
        for mode in ("overlap", "exact"):
            print(f"  {group:14s} {mode:8s} {fmt(scores[group][mode])}")
    events = [e for r in records for e in (r.get("events") or [])]
    reporting = sum(1 for e in events if e.get("reporting", e.get("type") == "statement"))
    print(f"  {len(events)} events, {len(events) / max(1, len(records)):.1f} per document; "
          f"reporting share {reporting / max(1, len(events)):.3f}")

    mapping = mapped_mentions(records, gold)
    ours_pairs = [((ln["source_doc_id"], ln["source_event"]),
                   (ln["target_doc_id"], ln["target_event"])) for ln in outputs["links"]]
    print("\nevent links (pairwise, cross-document chains)")
    print(f"  eventpipe             {len(ours_pairs):6d} links  "
          f"{fmt(link_scores(ours_pairs, mapping, gold))}")
    lemma_pairs = lemma_baseline_pairs(records, base)
    print(f"  lemma in tfidf cluster {len(lemma_pairs):5d} pairs  "
          f"{fmt(link_scores(lemma_pairs, mapping, gold))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
