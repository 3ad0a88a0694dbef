"""Every exception eventpipe raises, in one tree under `EventpipeError`.

One root lets a caller (the CLI above all) handle "anything eventpipe refused" in one place,
and the groups say what kind of trouble it is without knowing each class. A class that used
to extend a built-in (ValueError, RuntimeError, FileNotFoundError) still does, so code that
catches the built-in keeps working. This module imports nothing of eventpipe: every layer may
raise from it. The classes keep their old homes as names too (`eventpipe.storage.base
.StorageError`, `eventpipe.cli.errors.UsageError`, ...).

    EventpipeError
    ├── UsageError                 a request (command line, HTTP API, configuration) is wrong
    │   ├── UnknownJob             no checkpoint exists for the job named
    │   └── Refused                the action does not fit the job's status
    ├── InputError                 a document, file or message is not valid
    │   ├── InvalidControlMessage  (also ValueError) a control record that is not one
    │   ├── NewerSchemaVersion     (also ValueError) a message from a newer eventpipe
    │   └── InputRefused           (also ValueError) a submitted path ingest must not open
    ├── StreamError                Kafka: the broker, the topics, producing records
    │   ├── KafkaSetupError        the broker or the topics cannot be reached or made
    │   │   ├── BrokerStartError   a local broker (embedded or Apache Kafka) did not start
    │   │   │   └── BrokerConfigError  because of what it was given (no Java, a port
    │   │   │                          in use): the user's to fix
    │   │   └── CatchUpTimeout     (also TimeoutError) a topic not read to "now" in time
    │   └── DeliveryError          (also RuntimeError) records the broker did not take
    ├── StorageError               a backend refused data retrying will not fix
    │   └── BackendUnavailable     a backend cannot be reached now: retried
    ├── ModelError                 language processing: models and their output
    │   ├── NLPError               the spaCy layer
    │   │   └── ModelNotFoundError no spaCy pipeline could be loaded
    │   ├── InvalidOutput          a language model answered off the schema
    │   │   └── OverBudget         its time budget ran out before the answer was whole
    │   └── BackendError           (also RuntimeError) an events backend gave no answer
    │       └── BackendUnreachable no answer at all: transient, retried later
    ├── CheckpointError            job state and checkpoint files
    │   ├── CheckpointNotFound     (also FileNotFoundError) no checkpoint for a job
    │   ├── CheckpointWriteError   (also RuntimeError) records not delivered
    │   └── BatchLevelError        (also RuntimeError) the batch-level step failed
    ├── StackError                 (also RuntimeError) the local services
    └── StopRequested              not a failure: shutdown was asked for while waiting

The `eventpipe` command turns them into exit codes in one place (`eventpipe.cli.errors`):
usage and input errors and a broker's configuration exit 2, every other one 1. The
console's HTTP API answers a usage error with 400, `UnknownJob` with 404 and `Refused` with
409, the same message.
"""

from __future__ import annotations


class EventpipeError(Exception):
    """The root: everything eventpipe raises on purpose."""


# --- usage and configuration ------------------------------------------------------------


class UsageError(EventpipeError):
    """Bad input from the user (arguments, a request, configuration): printed as one clear
    line, exit code 2."""


class UnknownJob(UsageError):
    """No checkpoint exists for the job named."""


class Refused(UsageError):
    """The action does not fit the job's status (pausing a finished job, resubmitting a
    stopped batch, ...)."""


# --- input --------------------------------------------------------------------------------


class InputError(EventpipeError):
    """A document, an input file or a message that is not valid: refused with a clear
    reason, nothing else lost."""


class InvalidControlMessage(InputError, ValueError):
    """A record on the control topic that is not a valid control message."""


class NewerSchemaVersion(InputError, ValueError):
    """A message written by a newer eventpipe: read with this one's model it would be
    misread, so the document fails with this reason instead."""


class InputRefused(InputError, ValueError):
    """A submitted path ingest must not open."""


# --- Kafka ----------------------------------------------------------------------------------


class StreamError(EventpipeError):
    """Kafka: the broker, its topics, producing and consuming records."""


class KafkaSetupError(StreamError):
    """The broker cannot be reached or the topics cannot be created or verified."""


class BrokerStartError(KafkaSetupError):
    """A local broker (embedded or Apache Kafka) did not start."""


class BrokerConfigError(BrokerStartError):
    """A local broker cannot start because of what it was given (no Java, no Kafka jars, a
    port in use, a log directory that is not its own): the user's to fix, exit code 2."""


class CatchUpTimeout(KafkaSetupError, TimeoutError):
    """A reader did not see its markers come back in time: the topic could not be read to
    "now" (see `eventpipe.kafka.markers`)."""


class DeliveryError(StreamError, RuntimeError):
    """Produced records were not acknowledged by the broker: the input is not committed."""


# --- storage ------------------------------------------------------------------------------


class StorageError(EventpipeError):
    """A backend refused data for a reason retrying will not fix."""


class BackendUnavailable(StorageError):
    """The backend cannot be reached now; the sink retries with backoff and does not commit."""


# --- language models ----------------------------------------------------------------------


class ModelError(EventpipeError):
    """Language processing: a model that cannot be loaded or an answer that is unusable."""


class NLPError(ModelError):
    """Base class of the errors of `eventpipe.nlp`'s spaCy layer."""


class ModelNotFoundError(NLPError):
    """No candidate spaCy pipeline could be loaded."""


class InvalidOutput(ModelError):
    """The model answered, but not with events that match the schema: retried once, then
    the document gets the rules' events. `output` is what it answered, shown to it on the
    retry."""

    def __init__(self, reason: str, output: str = "") -> None:
        super().__init__(reason)
        self.output = output


class OverBudget(InvalidOutput):
    """The model ran out of its time budget before the answer was whole: the document falls
    back at once (a retry would cost the same again)."""


class BackendError(ModelError, RuntimeError):
    """A backend could not answer for a document (server down after retries, a request the
    server refuses): that document fails."""


class BackendUnreachable(BackendError):
    """No answer (refused, reset, timed out, 429, 5xx) after the backend's own quick retries:
    the server's trouble, not the document's, so the stage tries it again later through its
    retry topic (see runtime/retry_topic.py)."""

    transient = True


# --- checkpoints and jobs -----------------------------------------------------------------


class CheckpointError(EventpipeError):
    """Job state: checkpoint files and records, and a job's batch-level step."""


class CheckpointNotFound(CheckpointError, FileNotFoundError):
    """No checkpoint file for the job."""


class CheckpointWriteError(CheckpointError, RuntimeError):
    """Checkpoint records could not be delivered to the checkpoint topic."""


class BatchLevelError(CheckpointError, RuntimeError):
    """The batch-level step failed; the job becomes FAILED with this reason."""


# --- the local stack ----------------------------------------------------------------------


class StackError(EventpipeError, RuntimeError):
    """The local stack: a service that does not start or is not ready, its saved state
    unreadable, a database it needs unreachable."""


# --- not a failure --------------------------------------------------------------------------


class StopRequested(EventpipeError):
    """Shutdown was asked for while waiting on a backend: leave without committing."""

