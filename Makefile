.DEFAULT_GOAL := help
.PHONY: help setup demo check test-unit test-integration broker lint rules

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-18s %s\n", $$1, $$2}'

setup: ## Install Java, Maven, promtool, amtool (apt), the venv, the Kafka jars and test data
	bash scripts/setup.sh

demo: setup ## Run the demo: local Kafka if none answers, topics, a worker, the generator
	.venv/bin/cxpulse demo

check: ## Run every check and test (what CI runs)
	bash scripts/check.sh

lint: setup ## ruff and mypy only
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

rules: setup ## Regenerate the Prometheus recording rules and alerts (deploy/mixin/*.yaml)
	.venv/bin/python -m deploy.mixin.generate

test-unit: setup ## Fast tests without Kafka
	.venv/bin/python -m pytest tests/unit tests/agents -q

test-integration: setup ## Tests against a real local Kafka broker and worker
	.venv/bin/python -m pytest tests/integration -q

broker: setup ## Run a local Kafka on port 9092 until Ctrl-C
	.venv/bin/cxpulse broker
