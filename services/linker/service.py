from __future__ import annotations

import logging
import threading
import time

from eventpipe.checkpoint.reader import CheckpointReader
from eventpipe.checkpoint.state import JobState
from eventpipe.checkpoint.writer import CheckpointWriter
from eventpipe.errors import StopRequested
from eventpipe.kafka.clients import make_producer
from eventpipe.linking.finish import finish_job
from eventpipe.models import JobStatus
from eventpipe.runtime.health import HEARTBEAT, READINESS
from eventpipe.runtime.loop import ready_file
from eventpipe.runtime.service import install_stop_handlers, main_for
from eventpipe.settings import Settings
from eventpipe.storage.base import Backend
from eventpipe.storage.factory import open_backends

log = logging.getLogger(__name__)


class Linker:
    def __init__(self, settings: Settings, backends: list[Backend], stop: threading.Event
                 ) -> None:
        self.settings = settings
        self.backends = backends
        self.stop = stop
        self.reader = CheckpointReader(settings)
        self.writer = CheckpointWriter(settings, make_producer(settings))

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
                for state in self.ready_jobs():
                    checkpoint = self.reader.table.to_checkpoint(state)
                    record = finish_job(self.settings, self.writer, checkpoint, self.backends,
                                        self.stop)
                    self.reader.table.apply_record(record)
                time.sleep(0.1)
        except StopRequested:
            log.info("stopped while a backend was down; the job is linked at the next start")
        finally:
            self.reader.close()
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
