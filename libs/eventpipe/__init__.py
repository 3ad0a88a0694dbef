"""eventpipe: Kafka stream-processing microservices that turn documents into structured events."""

__version__ = "0.1.0"
