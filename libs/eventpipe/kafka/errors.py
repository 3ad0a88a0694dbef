class KafkaSetupError(Exception):
    """The broker cannot be reached or the topics cannot be created or verified."""


class BrokerStartError(KafkaSetupError):
    """A local broker (embedded or Apache Kafka) did not start."""


class BrokerConfigError(BrokerStartError):
    """A local broker cannot start because of what it was given (no Java, no Kafka jars, a
    port in use, a log directory that is not its own): the user's to fix, exit code 2."""
