from __future__ import annotations

import logging
import threading
import time

from eventpipe.checkpoint.reader import CheckpointReader
from eventpipe.checkpoint.state import JobState
from eventpipe.checkpoint.writer import CheckpointWriter
from eventpipe.errors import StopRequested
from eventpipe.kafka.clients import make_consumer, make_producer
from eventpipe.kafka.topics import Topics
from eventpipe.linking.finish import finish_job
from eventpipe.linking.live import LiveStorylines, profile_from_message
from eventpipe.models import JobStatus
from eventpipe.runtime.health import HEARTBEAT, READINESS
from eventpipe.runtime.loop import ready_file
from eventpipe.runtime.service import install_stop_handlers, main_for
from eventpipe.settings import Settings
from eventpipe.storage.base import Backend
from eventpipe.storage.factory import open_backends
from eventpipe.storage.jsonl import JsonlStore

log = logging.getLogger(__name__)


class Linker:
    def __init__(self, settings: Settings, backends: list[Backend], stop: threading.Event
                 ) -> None:
        self.settings = settings
        self.backends = backends
        self.stop = stop
        self.reader = CheckpointReader(settings)
        self.writer = CheckpointWriter(settings, make_producer(settings))
        # Every processed document passes the events topic on its way to the sink: the
        # linker reads it too, in its own group, to form storylines as documents come.
        self.live = LiveStorylines(settings.storyline_threshold)
        self.events = make_consumer(settings, f"{settings.topic_prefix}-linker",
                                    **{"enable.auto.commit": True,
                                       # Not latency-bound: fewer idle fetches for the broker.
                                       "fetch.wait.max.ms": 500})
        self.events.subscribe([Topics.from_settings(settings).events])
        self.written_at = time.monotonic()

    def read_events(self, timeout_s: float = 0.0) -> None:
        """Place the documents that reached the events topic since the last call."""
        table = self.reader.table
        while msgs := self.events.consume(num_messages=500, timeout=timeout_s):
            for msg in msgs:
                found = None if msg.error() else profile_from_message(msg.value() or b"")
                if found is None:
                    continue
                job_id, batch_id, profile = found
                state = table.jobs.get(job_id)
                if state is None or table.status(state) in (JobStatus.RUNNING,
                                                             JobStatus.PAUSED):
                    self.live.add(job_id, batch_id, profile)

    def catch_up(self, state: JobState, wait_s: float = 1.0) -> None:
        """Read the events topic until the job's live stories hold every processed document
        (the last ones may still be on the way), for at most `wait_s`."""
        deadline = time.monotonic() + wait_s
        while (clustering := self.live.clustering(state.job_id)) is not None and not (
                state.processed.keys() <= clustering.story_of.keys()):
            if time.monotonic() > deadline:
                return
            self.read_events(timeout_s=0.05)

    def write_live(self) -> None:
        """Every `live_storylines_s`, the storylines so far of each job whose live state
        holds every document processed so far (after a linker restart it does not: the end
        step then clusters the saved documents)."""
        every = self.settings.live_storylines_s
        if not every or time.monotonic() - self.written_at < every:
            return
        self.written_at = time.monotonic()
        table = self.reader.table
        jsonl = [b for b in self.backends if isinstance(b, JsonlStore)]
        for job_id in self.live.changed():
            state = table.jobs.get(job_id)
            clustering = self.live.clustering(job_id)
            if state is None or clustering is None:
                continue  # the checkpoint topic has not told about the job yet
            if table.status(state) not in (JobStatus.RUNNING, JobStatus.PAUSED):
                self.live.forget(job_id)  # stopped or failed: a resume starts over
                continue
            if not state.processed.keys() <= clustering.story_of.keys():
                continue
            batch_id, rows = self.live.snapshot(job_id)
            for backend in jsonl:
                try:
                    backend.save_live_storylines(batch_id, rows, state.result_version or 1)
                except OSError as exc:  # the next refresh tries again
                    log.warning("cannot write the storylines so far",
                                extra={"job_id": job_id, "reason": str(exc)})

    def ready_jobs(self) -> list[JobState]:
        table = self.reader.table
        return [s for s in table.jobs.values()
                if s.batch_id and s.all_done and table.status(s) is JobStatus.RUNNING]

    def run(self) -> None:
        ready = ready_file(self.settings.data_dir, "linker")
        ready.parent.mkdir(parents=True, exist_ok=True)
        ready.touch()
        READINESS.set(None)
        try:
            while not self.stop.is_set():
                HEARTBEAT.beat()
                # Caught up first, so a job is judged on everything recorded so far.
                while self.reader.poll(timeout_s=0.2):
                    pass
                self.read_events()
                finishing = self.ready_jobs()
                for state in finishing:
                    self.catch_up(state)
                    checkpoint = self.reader.table.to_checkpoint(state)
                    record = finish_job(self.settings, self.writer, checkpoint, self.backends,
                                        self.stop, self.live.clustering(state.job_id))
                    self.live.forget(state.job_id)
                    self.reader.table.apply_record(record)
                self.write_live()
                time.sleep(0.1)
        except StopRequested:
            log.info("stopped while a backend was down; the job is linked at the next start")
        finally:
            self.reader.close()
            self.events.close()
            ready.unlink(missing_ok=True)
            for backend in self.backends:
                backend.close()


def run(settings: Settings) -> None:
    stop = install_stop_handlers()
    try:
        backends = open_backends(settings, stop)
    except StopRequested:
        return
    Linker(settings, backends, stop).run()


main = main_for("linker", run)
