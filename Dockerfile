# CX Pulse: one image for every `cxpulse` command (worker by default).
#
#   docker build -t cxpulse .
#   docker run --rm -e CXPULSE_BOOTSTRAP_SERVERS=kafka:9092 -p 9110:9110 cxpulse            # a worker
#   docker run --rm -e CXPULSE_BOOTSTRAP_SERVERS=kafka:9092 cxpulse generate --rate 50      # traffic
#
# Configuration is the usual CXPULSE_* environment (see the README). The worker keeps its tables
# in memory and rebuilds them from the Kafka changelogs on start: no volume is needed.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package needs (there is no .dockerignore: never copy .venv or caches).
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY agents ./agents
COPY schemas ./schemas
RUN pip install . \
    && cd / \
    && rm -rf /src

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/cxpulse cxpulse
USER cxpulse
WORKDIR /home/cxpulse

ENV CXPULSE_METRICS_HOST=0.0.0.0 \
    CXPULSE_METRICS_PORT=9110
EXPOSE 9110

# The worker serves /metrics once it runs; slim has no curl, so ask with Python.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://localhost:' + os.environ.get('CXPULSE_METRICS_PORT', '9110') + '/metrics', timeout=4).read()"]

ENTRYPOINT ["cxpulse"]
CMD ["worker"]
