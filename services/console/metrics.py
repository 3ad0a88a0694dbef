"""Per-job gauges at /metrics, computed from the checkpoint files when Prometheus scrapes:
documents by state, status, rate and seconds since the job's checkpoint last changed (the
PrometheusRule in the chart alerts on a RUNNING job where that grows)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from eventpipe.models import JobStatus
from services.console.views import JobViews


class JobGauges(Collector):
    def __init__(self, views: JobViews) -> None:
        self.views = views

    def collect(self) -> Iterator[Metric]:
        docs = GaugeMetricFamily("eventpipe_job_documents", "Documents of a job by state",
                                 labels=["job_id", "batch_id", "state"])
        status = GaugeMetricFamily("eventpipe_job_status", "1 for the job's current status",
                                   labels=["job_id", "batch_id", "status"])
        rate = GaugeMetricFamily("eventpipe_job_rate_documents_per_second",
                                 "Documents processed or failed per second (60 s window)",
                                 labels=["job_id", "batch_id"])
        idle = GaugeMetricFamily("eventpipe_job_seconds_since_progress",
                                 "Seconds since the job's checkpoint last changed",
                                 labels=["job_id", "batch_id"])
        for cp in self.views.all():
            view = self.views.view(cp)
            ids = [str(cp["job_id"]), str(cp["batch_id"])]
            docs.add_metric([*ids, "processed"], view["processed_documents"])
            docs.add_metric([*ids, "failed"], view["failed_documents"])
            docs.add_metric([*ids, "remaining"], view["remaining_documents"])
            for value in JobStatus:
                status.add_metric([*ids, value.value], 1.0 if cp["status"] == value else 0.0)
            rate.add_metric(ids, view["rate_per_min"] / 60.0)
            if view["seconds_since_update"] is not None:
                idle.add_metric(ids, view["seconds_since_update"])
        yield from (docs, status, rate, idle)
