"""Deployment artefacts for CX Pulse (the Prometheus monitoring mixin lives in deploy.mixin)."""
