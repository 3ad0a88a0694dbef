"""Traces per document across the stages (OpenTelemetry, the `otel` extra), off unless
EVENTPIPE_TRACING=true.

Each stage opens one span per document and passes the trace context on in the Kafka headers
of the record it produces (W3C `traceparent`), so ingest → ner → dp → llm → sink of one
document form one trace, whichever process or machine ran each stage. Off, nothing of
OpenTelemetry is imported and a span costs nothing. This module knows records and headers,
not jobs: callers name the span and give its attributes."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Message

from eventpipe.errors import UsageError
from eventpipe.settings import Settings

Headers = list[tuple[str, bytes]]
NOT_INSTALLED = "EVENTPIPE_TRACING=true needs OpenTelemetry: pip install 'eventpipe[otel]'"


class DocSpan:
    """One document's span in one stage; `headers` carry it to the next stage."""

    def __init__(self, span: Any = None, headers: Headers | None = None) -> None:
        self._span = span
        self.headers = headers

    def end(self, error: str | None = None) -> None:
        if self._span is None:
            return
        if error is not None:
            from opentelemetry.trace import Status, StatusCode

            self._span.set_status(Status(StatusCode.ERROR, error[:500]))
        self._span.end()


NO_SPAN = DocSpan()


def record_headers(msg: Message) -> Headers | None:
    """A consumed record's headers with byte values (where a trace context would be)."""
    raw = msg.headers()
    if not raw:
        return None
    items = raw.items() if isinstance(raw, dict) else raw
    return [(k, v) for k, v in items if isinstance(v, bytes)]


class Tracing:
    """Spans of one service. `provider`: a TracerProvider (tests pass one with an in-memory
    exporter); default, the global one `configure` set up."""

    def __init__(self, settings: Settings, service: str, provider: Any = None) -> None:
        self.service = service
        self._tracer: Any = None
        if not settings.tracing:
            return
        try:
            from opentelemetry import trace
        except ImportError:
            raise UsageError(NOT_INSTALLED) from None
        self._tracer = trace.get_tracer("eventpipe", tracer_provider=provider)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def start(self, name: str, parent: Headers | None = None, **attributes: str) -> DocSpan:
        """A span as the child of the context in `parent` (a consumed record's headers), or
        the root of a new trace."""
        if self._tracer is None:
            return NO_SPAN
        from opentelemetry import propagate, trace

        carrier = {k: v.decode("latin-1") for k, v in parent or []}
        span = self._tracer.start_span(
            name, context=propagate.extract(carrier),
            attributes={"eventpipe.service": self.service, **attributes})
        out: dict[str, str] = {}
        propagate.inject(out, context=trace.set_span_in_context(span))
        return DocSpan(span, [(k, v.encode("latin-1")) for k, v in out.items()])


def configure(settings: Settings, service: str) -> None:
    """A service's exporter: spans go over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (the
    standard OpenTelemetry variables apply), named `eventpipe-<service>`."""
    if not settings.tracing:
        return
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise UsageError(NOT_INSTALLED) from None
    provider = TracerProvider(resource=Resource.create({"service.name": f"eventpipe-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
