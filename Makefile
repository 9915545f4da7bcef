.DEFAULT_GOAL := help
.PHONY: help setup demo check test-unit test-integration broker lint rules soak bench previews

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-18s %s\n", $$1, $$2}'

setup: ## Install Java, Maven, promtool, amtool (apt), the venv, dashboard-linter, Kafka jars, test data
	bash scripts/setup.sh

demo: setup ## Run the demo: local Kafka if none answers, topics, a worker, the generator
	.venv/bin/cxpulse demo

check: ## Run every check and test (what CI runs)
	bash scripts/check.sh

lint: setup ## ruff and mypy only
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

rules: setup ## Regenerate the recording rules, alerts and Grafana dashboards (deploy/mixin/)
	.venv/bin/python -m deploy.mixin.generate

previews: setup ## Render docs/*.png previews of the dashboards from a live run (about 6 min)
	.venv/bin/python -m deploy.preview

test-unit: setup ## Fast tests without Kafka
	.venv/bin/python -m pytest tests/unit tests/agents -q

test-integration: setup ## Tests against a real local Kafka broker and worker
	.venv/bin/python -m pytest tests/integration -q

soak: setup ## Crash exactness at full size: 200k events, three SIGKILLs (~10 min)
	CXPULSE_SOAK_EVENTS=200000 .venv/bin/python -m pytest tests/integration/test_faults.py -k sigkill -s -q --timeout 7200

bench: setup ## Benchmark: 1M events vs raw consume, Quix Streams, compute; latency, memory (BENCH_ARGS="--events 200000")
	.venv/bin/python -m bench.run $(BENCH_ARGS)

broker: setup ## Run a local Kafka on port 9092 until Ctrl-C
	.venv/bin/cxpulse broker
