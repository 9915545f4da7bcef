"""CX Pulse monitoring mixin: one config (selectors, windows, SLO targets) and the generator
that renders Prometheus recording rules from it (`python -m deploy.mixin.generate`)."""
