#!/usr/bin/env bash
# Install everything CX Pulse needs on a fresh Debian machine: system packages (Java, Maven,
# promtool, amtool), a virtualenv with the project and its dev tools, and the Kafka jars (cached).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v amtool >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need_apt[*]} with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install ${need_apt[*]} (Debian: apt-get install ${need_apt[*]})" >&2
    exit 2
  fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import pipeline, faust, pytest, ruff" >/dev/null 2>&1 \
   || [ pyproject.toml -nt .venv/.installed ]; then
  echo "setup: installing the project and its dev tools into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch .venv/.installed
fi

echo "setup: fetching Kafka jars (cached after the first run)" >&2
.venv/bin/python -c "from pipeline.broker import ensure_kafka_jars, default_cache_dir, DEFAULT_KAFKA_VERSION as v; ensure_kafka_jars(v, default_cache_dir())"

# The CDNOW sample (Fader, Hardie & Lee 2005) for the churn-fit test: it ships inside the
# lifetimes wheel on PyPI; we keep the wheel and the extracted file in the cache, not the repo.
cache_home=${XDG_CACHE_HOME:-}
case "$cache_home" in /*) ;; *) cache_home="$HOME/.cache" ;; esac
datasets="$cache_home/cxpulse/datasets"
if [ ! -s "$datasets/CDNOW_sample.txt" ]; then
  echo "setup: fetching the CDNOW sample into $datasets (cached after the first run)" >&2
  mkdir -p "$datasets"
  if ! compgen -G "$datasets/[Ll]ifetimes-0.11.3-*.whl" >/dev/null; then
    .venv/bin/python -m pip download -q --no-deps lifetimes==0.11.3 -d "$datasets"
  fi
  .venv/bin/python - "$datasets" <<'PY'
import sys
import zipfile
from pathlib import Path

folder = Path(sys.argv[1])
wheel = next(p for p in folder.iterdir() if p.name.lower().startswith("lifetimes-0.11.3-"))
data = zipfile.ZipFile(wheel).read("lifetimes/datasets/CDNOW_sample.txt")
partial = folder / "CDNOW_sample.txt.part"
partial.write_bytes(data)
partial.replace(folder / "CDNOW_sample.txt")
PY
fi
echo "setup: done" >&2
