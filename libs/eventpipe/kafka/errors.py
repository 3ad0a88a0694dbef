"""The Kafka errors, kept under their old names; the tree is in `eventpipe.errors`."""

from eventpipe.errors import BrokerConfigError as BrokerConfigError
from eventpipe.errors import BrokerStartError as BrokerStartError
from eventpipe.errors import KafkaSetupError as KafkaSetupError
