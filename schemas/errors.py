"""The one root exception of CX Pulse; every error message says what to do about it."""


class CXPulseError(Exception):
    """Root of every error CX Pulse raises on purpose."""


class ConfigurationError(CXPulseError):
    """Bad usage or configuration: the CLI exits with code 2 and prints the message."""


class BrokerError(CXPulseError):
    """The local Kafka broker could not be provisioned or started."""
