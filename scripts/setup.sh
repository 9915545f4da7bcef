#!/usr/bin/env bash
# Install everything CX Pulse needs on a fresh Debian machine: system packages (Java, Maven,
# promtool, amtool), a virtualenv with the project and its dev tools, the Kafka jars and the test
# data (CDNOW sample, compose-spec schema), cached.
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

# The Compose Specification JSON Schema for tests/unit/test_compose.py: schema/compose-spec.json
# in the Go module github.com/compose-spec/compose-go/v2, the loader Docker Compose validates
# with. The module zip comes from the Go module proxy (no Go toolchain needed) and must match
# the checksum database's h1: hash pinned here (`go mod download -json <module>@<version>`
# prints it); only the schema is kept, in the cache, not the repo.
COMPOSE_GO_VERSION=v2.16.2
COMPOSE_GO_SUM=h1:pTp1DqQwJzFd85GzlWsSszKA1ABrV/ySqsClujIcWA8=
compose_schema="$cache_home/cxpulse/compose-spec/compose-go-$COMPOSE_GO_VERSION.json"
if [ ! -s "$compose_schema" ]; then
  echo "setup: fetching the compose-spec schema ($COMPOSE_GO_VERSION) into $compose_schema" >&2
  mkdir -p "$(dirname "$compose_schema")"
  .venv/bin/python - "$compose_schema" "$COMPOSE_GO_VERSION" "$COMPOSE_GO_SUM" <<'PY'
import base64
import hashlib
import io
import os
import sys
import urllib.request
import zipfile
from pathlib import Path

target, version, pinned = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
module = "github.com/compose-spec/compose-go/v2"
# First proxy of GOPROXY when it is a URL (a mirror), else the public proxy.
proxy = os.environ.get("GOPROXY", "").replace("|", ",").split(",")[0]
if not proxy.startswith(("https://", "http://")):
    proxy = "https://proxy.golang.org"
url = f"{proxy.rstrip('/')}/{module}/@v/{version}.zip"
with urllib.request.urlopen(url, timeout=120) as response:
    data = response.read()
archive = zipfile.ZipFile(io.BytesIO(data))
# Go's dirhash "h1": SHA-256 over the sorted lines "<sha256 hex>  <file name>\n" of the zip.
names = sorted(archive.namelist())
summary = "".join(f"{hashlib.sha256(archive.read(n)).hexdigest()}  {n}\n" for n in names)
actual = "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()
if actual != pinned:
    sys.exit(f"setup: {url} has checksum {actual}, expected {pinned}: refusing it")
schema = archive.read(f"{module}@{version}/schema/compose-spec.json")
partial = target.with_name(target.name + ".part")
partial.write_bytes(schema)
partial.replace(target)
PY
fi

# dashboard-linter lints the generated Grafana dashboards (tests/unit/test_dashboards.py). It has
# no tagged release the Go module proxy serves, so it is pinned to a commit (pseudo-version) and
# its module zip to the h1: hash below. `go install <module>@<version>` does not work here: it
# reads the module's version list for deprecation notices, which the proxy refuses; so the module
# is downloaded at the pin, checked, and built with its own go.sum into <cache>/cxpulse/bin.
DASHBOARD_LINTER_VERSION=v0.0.0-20241224134444-1765d94aec4a
DASHBOARD_LINTER_SUM=h1:wpyAYX8+Rqu0LIEE7zXBR/qjBH4t0yXvqlRGa1wD5rg=
tools="$cache_home/cxpulse/bin"
if [ "$(cat "$tools/dashboard-linter.version" 2>/dev/null)" != "$DASHBOARD_LINTER_VERSION" ] \
   || [ ! -x "$tools/dashboard-linter" ]; then
  GO=$(command -v go || echo /usr/local/go/bin/go)
  if [ ! -x "$GO" ]; then
    echo "setup: dashboard-linter is built with Go 1.23 or newer, which is missing: install it" \
      "(Debian: apt-get install golang-go, from bookworm-backports where stable's is older;" \
      "or the go.dev/dl tarball into /usr/local/go)" >&2
    exit 2
  fi
  echo "setup: building dashboard-linter $DASHBOARD_LINTER_VERSION into $tools (cached)" >&2
  mkdir -p "$tools"
  module=github.com/grafana/dashboard-linter
  # The checksum database has no entry for this pseudo-version: the pinned h1: hash replaces it.
  info=$(GONOSUMDB=$module GOFLAGS= "$GO" mod download -json "$module@$DASHBOARD_LINTER_VERSION")
  read -r dir sum < <(printf '%s' "$info" \
    | .venv/bin/python -c 'import json, sys; d = json.load(sys.stdin); print(d["Dir"], d["Sum"])')
  if [ "$sum" != "$DASHBOARD_LINTER_SUM" ]; then
    echo "setup: $module@$DASHBOARD_LINTER_VERSION has checksum $sum," \
      "expected $DASHBOARD_LINTER_SUM: refusing it" >&2
    exit 1
  fi
  (cd "$dir" && GOFLAGS=-mod=readonly "$GO" build -trimpath -o "$tools/dashboard-linter.part" .)
  mv "$tools/dashboard-linter.part" "$tools/dashboard-linter"
  echo "$DASHBOARD_LINTER_VERSION" > "$tools/dashboard-linter.version"
fi
echo "setup: done" >&2
