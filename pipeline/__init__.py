"""App wiring, configuration, CLI and exporter: the only package that knows about Faust's
App, Kafka clients, the environment and the command line."""
