class KafkaSetupError(Exception):
    """The broker cannot be reached or the topics cannot be created or verified."""


class BrokerStartError(KafkaSetupError):
    """The embedded broker binary is missing or did not start."""
