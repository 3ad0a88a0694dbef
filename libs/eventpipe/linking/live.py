"""Storylines while a job runs: the linker reads every processed document off the events
topic and places it at once (eventpipe.linking.clustering), so a running job shows its
storylines so far and the end-of-batch step starts from stories already formed.

The live state is a cache, never the truth: the end step uses it only when it holds exactly
the job's processed documents (a linker restart, a replay or a document a backend refused
make it differ), else it clusters the saved documents again as before."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from eventpipe.linking.batch import document_profile
from eventpipe.linking.clustering import OnlineStorylines, Profile


@dataclass
class _Job:
    batch_id: str
    clustering: OnlineStorylines
    changed: bool = False


def profile_from_message(value: bytes) -> tuple[str, str, Profile] | None:
    """(job id, batch id, profile) of an events-topic message, profiled as its saved record
    will be; None for what is not a processed document (the sink judges those)."""
    try:
        doc = json.loads(value)
        job_id, batch_id, doc_id = doc["job_id"], doc["batch_id"], doc["doc_id"]
        text, meta = doc.get("text") or "", doc.get("meta") or {}
        if not all(isinstance(v, str) for v in (job_id, batch_id, doc_id, text)):
            return None
        record = {"id": doc_id, "text": text, "entities": doc.get("entities"),
                  "meta": meta if isinstance(meta, dict) else {}}
        return job_id, batch_id, document_profile(record)
    except (ValueError, KeyError, TypeError):
        return None


class LiveStorylines:
    """The storylines so far of each job the linker has seen documents of."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.jobs: dict[str, _Job] = {}

    def add(self, job_id: str, batch_id: str, profile: Profile) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            job = self.jobs[job_id] = _Job(batch_id, OnlineStorylines(self.threshold))
        job.clustering.add(profile)
        job.changed = True

    def forget(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)

    def clustering(self, job_id: str) -> OnlineStorylines | None:
        job = self.jobs.get(job_id)
        return None if job is None else job.clustering

    def changed(self) -> list[str]:
        return [job_id for job_id, job in self.jobs.items() if job.changed]

    def snapshot(self, job_id: str) -> tuple[str, list[dict[str, Any]]]:
        """(batch id, the storylines so far) of a job: groups of two documents or more,
        largest first, titled with their heaviest named entities. Marked `provisional`: the
        end step replaces them with the final storylines, titles that say what happened and
        their events."""
        job = self.jobs[job_id]
        job.changed = False
        rows = []
        stories = [s for s in job.clustering.stories if len(s.members) >= 2]
        stories.sort(key=lambda s: (-len(s.members), s.members[0]))
        for n, story in enumerate(stories, start=1):
            keys = Counter({t[2:]: w for t, w in story.total.items() if t.startswith("e:")})
            names = [k.title() for k, _ in sorted(keys.items(), key=lambda kv: (-kv[1], kv[0]))]
            rows.append({
                "job_id": job_id, "storyline_id": f"{job_id[:8]}-live{n:04d}",
                "title": " / ".join(names[:2]) or "Untitled", "doc_ids": list(story.members),
                "document_count": len(story.members),
                "start": story.first.isoformat() if story.first else None,
                "end": story.last.isoformat() if story.last else None,
                "provisional": True, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            })
        return job.batch_id, rows
