"""`eventpipe reprocess JOB --from-stage llm|dp`: the command over `eventpipe.reprocess`."""

from __future__ import annotations

import time
from types import SimpleNamespace

import click

from eventpipe import reprocess
from eventpipe.cli import options, stack_commands
from eventpipe.jobs import require_checkpoint
from eventpipe.models import JobStatus
from eventpipe.settings import Settings


def cmd_reprocess(args: SimpleNamespace, settings: Settings) -> int:
    def work(live: Settings, wait: bool) -> int:
        started = reprocess.start(live, args.job, args.from_stage, args.timeout)
        print(f"job {started.job_id}: reprocessing {started.documents} document(s) of batch "
              f"{started.batch_id} from stage {started.from_stage} into result version "
              f"{started.result_version} (from job {started.source_job_id})")
        if not wait:
            return 0
        cp = require_checkpoint(live, started.job_id, None)
        while not cp.is_final:
            time.sleep(0.25)
            cp = require_checkpoint(live, started.job_id, None)
        print(f"job {cp.job_id}: {cp.status.value}: processed {cp.processed_documents}, "
              f"failed {cp.failed_documents} of {cp.total_documents}")
        return 0 if cp.status is JobStatus.COMPLETED else 1

    return stack_commands.on_a_stack(settings, "reprocess", work, args.wait)


command = options.command("reprocess", cmd_reprocess, [
    options.job(required=True), options.data_dir(),
    click.Option(["--from-stage"], required=True, type=click.Choice(list(reprocess.FROM_STAGES)),
                 help="the first stage to run again: llm (events) or dp (parse and events)"),
    click.Option(["--wait"], is_flag=True,
                 help="wait until the reprocess is done (always, when no stack is running: "
                 "it then starts one and stops it after)"),
    options.timeout("seconds to wait for the checkpoint to show the reprocess")],
    "Run the later stages and the batch-level work again from the saved output of the "
    "earlier ones, with the current settings, into a new result version kept beside the "
    "earlier ones.\n\nJOB: a job id (its results), or a batch id (its newest COMPLETED "
    "result version).")
