"""docker-compose.yml: valid Compose, and wired consistently to the ops configs under deploy/.

Checked statically, without a Docker engine:

- the file validates against the Compose Specification JSON Schema (draft 2020-12) that Docker
  Compose itself uses, from the Go module github.com/compose-spec/compose-go/v2 at the version
  pinned in scripts/setup.sh, which fetches it into the cache (a skip without it, a failure
  under CI=true); a mutated copy must fail, so the validation can fail;
- every bind-mounted host path exists, every named volume is declared, every `depends_on`
  target is a service whose state can satisfy the condition, every long-running service has a
  health check, every image tag is pinned;
- the paths the containers are started with (`--config.file`, `rule_files`, Grafana's
  provisioning and dashboards) resolve, through the compose mounts, to files in this repository;
- Prometheus scrapes the workers under the mixin's selector, `promtool check config` passes, and
  Grafana's datasource has the fixed uid the dashboards default to;
- the published ports are documented in the file's header comment and in the README.
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from deploy.mixin.config import DEFAULT_CONFIG
from tests.unit.conftest import ROOT, cache_home, required_cached_file, run_in_root

COMPOSE = ROOT / "docker-compose.yml"
SETUP = ROOT / "scripts" / "setup.sh"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
GRAFANA_PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
DATASOURCES = GRAFANA_PROVISIONING / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_PROVISIONING / "dashboards" / "cxpulse.yml"
DASHBOARDS_OUT = ROOT / "deploy" / "mixin" / "dashboards_out"
#: The provisioned Prometheus datasource's uid: stable, documented in the README and in
#: deploy/grafana/provisioning/datasources/prometheus.yml.
DATASOURCE_UID = "cxpulse-prometheus"
#: Where Grafana reads provisioning from unless GF_PATHS_PROVISIONING says otherwise.
GRAFANA_DEFAULT_PROVISIONING = PurePosixPath("/etc/grafana/provisioning")
WORKER_METRICS_PORT = 9110


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = _load_yaml(COMPOSE)
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


@pytest.fixture(scope="module")
def prometheus_config() -> dict[str, Any]:
    document = _load_yaml(PROMETHEUS_CONFIG)
    assert isinstance(document, dict)
    return document


# --- the Compose Specification schema --------------------------------------------------------


def compose_go_version() -> str:
    """The compose-go version scripts/setup.sh pins (the one source of that number)."""
    text = SETUP.read_text(encoding="utf-8")
    match = re.search(r"^COMPOSE_GO_VERSION=(v\d+\.\d+\.\d+)$", text, re.MULTILINE)
    assert match is not None, "scripts/setup.sh must pin COMPOSE_GO_VERSION=vX.Y.Z"
    return match.group(1)


@pytest.fixture(scope="module")
def compose_schema_validator() -> jsonschema.Draft202012Validator:
    version = compose_go_version()
    path = cache_home() / "cxpulse" / "compose-spec" / f"compose-go-{version}.json"
    required_cached_file(path, f"the compose-spec JSON Schema (compose-go {version})")
    schema = json.loads(path.read_text(encoding="utf-8"))
    # compose-go compiles it as draft 2020-12; the schema must say so, and be a valid schema.
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _schema_errors(validator: jsonschema.Draft202012Validator, document: Any) -> list[str]:
    """Every error as "<json path>: <message>", including the causes under a failed oneOf."""

    def walk(errors: Any) -> Iterator[str]:
        for error in errors:
            yield f"{error.json_path}: {error.message}"
            yield from walk(error.context or ())

    return sorted(walk(validator.iter_errors(document)))


def test_compose_file_matches_the_compose_spec(
    compose_schema_validator: jsonschema.Draft202012Validator, compose: dict[str, Any]
) -> None:
    assert _schema_errors(compose_schema_validator, compose) == []


def _with_misspelt_service_key(document: dict[str, Any]) -> str:
    document["services"]["worker"]["heathcheck"] = document["services"]["worker"]["healthcheck"]
    return "$.services.worker: Unevaluated properties are not allowed ('heathcheck' was unexpected)"


def _with_unknown_depends_on_condition(document: dict[str, Any]) -> str:
    document["services"]["worker"]["depends_on"]["kafka"]["condition"] = "service_ready"
    return "$.services.worker.depends_on.kafka.condition: 'service_ready' is not one of"


def _with_unknown_top_level_key(document: dict[str, Any]) -> str:
    document["service"] = document.pop("services")
    return "$: 'service' does not match any of the regexes: '^x-'"


@pytest.mark.parametrize(
    "mutate",
    [_with_misspelt_service_key, _with_unknown_depends_on_condition, _with_unknown_top_level_key],
)
def test_schema_rejects_a_broken_compose_file(
    compose_schema_validator: jsonschema.Draft202012Validator,
    compose: dict[str, Any],
    mutate: Any,
) -> None:
    broken = copy.deepcopy(compose)
    expected = mutate(broken)
    errors = _schema_errors(compose_schema_validator, broken)
    assert any(error.startswith(expected) for error in errors), errors


def test_setup_pins_the_compose_go_module_by_checksum() -> None:
    text = SETUP.read_text(encoding="utf-8")
    assert re.search(r"^COMPOSE_GO_SUM=h1:[A-Za-z0-9+/]{43}=$", text, re.MULTILINE), (
        "scripts/setup.sh must pin the module's h1: checksum next to its version"
    )


# --- mounts, volumes, dependencies, health checks, images ------------------------------------


def _mounts(service: dict[str, Any]) -> Iterator[tuple[str, PurePosixPath, bool]]:
    """(source, container target, is a bind mount) for each of the service's volumes."""
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            bind = source.startswith((".", "/", "~"))
        else:
            source, target = volume["source"], volume["target"]
            bind = volume.get("type") == "bind"
        yield source, PurePosixPath(target), bind


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """The repository file behind `container_path`, through the service's most specific bind
    mount (the mount whose target is the longest prefix of the path)."""
    path = PurePosixPath(posixpath.normpath(container_path))
    candidates = [
        (target, source)
        for source, target, bind in _mounts(service)
        if bind and path.is_relative_to(target)
    ]
    assert candidates, f"{container_path} is not under any bind mount of the service"
    target, source = max(candidates, key=lambda pair: len(pair[0].parts))
    return (ROOT / source / path.relative_to(target)).resolve()


def test_bind_mounts_exist_and_named_volumes_are_declared(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for source, target, bind in _mounts(service):
            if bind:
                assert source.startswith("./"), f"{name}: bind {source} must be repo-relative"
                assert (ROOT / source).exists(), f"{name}: {source} (for {target}) is missing"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"


def _one_shot(service: dict[str, Any]) -> bool:
    return service.get("restart") == "no"


def _has_healthcheck(service: dict[str, Any]) -> bool:
    check = service.get("healthcheck") or {}
    return not check.get("disable", False) and bool(check.get("test"))


def test_depends_on_targets_are_services_that_can_meet_the_condition(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for target, spec in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert _has_healthcheck(services[target]), f"{name}: {target} has no health check"
            elif condition == "service_completed_successfully":
                assert _one_shot(services[target]), f"{name}: {target} is not a one-shot job"
            else:
                assert condition == "service_started", f"{name} -> {target}: {condition}"


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    one_shot = {name for name, service in services.items() if _one_shot(service)}
    assert one_shot == {"topics"}
    for name, service in services.items():
        if name in one_shot:
            continue
        assert _has_healthcheck(service), f"{name} runs for good but has no health check"
        test = service["healthcheck"]["test"]
        assert isinstance(test, list), f"{name}: use the list form of healthcheck.test"
        assert test[0] in {"CMD", "CMD-SHELL"}, f"{name}: {test}"
        assert service.get("restart") in {"unless-stopped", "always", "on-failure"}, name


def _published(service: dict[str, Any]) -> list[tuple[int | None, int]]:
    """(host port or None for an ephemeral one, container port) for each published port."""
    published: list[tuple[int | None, int]] = []
    for port in service.get("ports", []):
        parts = str(port).split(":")
        host = int(parts[-2]) if len(parts) >= 2 and parts[-2] else None
        published.append((host, int(parts[-1].split("/")[0])))
    return published


def test_http_healthchecks_ask_the_port_the_service_serves(
    services: dict[str, dict[str, Any]],
) -> None:
    checked = set()
    for name, service in services.items():
        test = " ".join((service.get("healthcheck") or {}).get("test") or [])
        for url in re.findall(r"http://localhost:\d+/[\w/.-]*", test):
            port = urlsplit(url).port
            assert port in {container for _, container in _published(service)}, (name, url)
            checked.add(name)
    assert checked == {"worker", "prometheus", "alertmanager", "grafana"}


def test_images_are_pinned_and_builds_use_the_project_dockerfile(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if "build" in service:
            assert service["build"] == ".", name
            assert (ROOT / "Dockerfile").is_file()
            assert "image" not in service, f"{name}: build or image, not both"
            continue
        image = service["image"]
        name_part, _, tag = image.rpartition(":")
        assert name_part and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d+\.\d+\.\d+", tag), f"{name}: {image} not pinned"


def test_worker_metrics_port_is_published_but_not_fixed(
    services: dict[str, dict[str, Any]],
) -> None:
    # A fixed host port would make `docker compose up --scale worker=N` fail on the second one.
    assert _published(services["worker"]) == [(None, WORKER_METRICS_PORT)]


# --- Prometheus and Alertmanager -------------------------------------------------------------


def _flag(service: dict[str, Any], flag: str) -> str:
    values = [arg.split("=", 1)[1] for arg in service["command"] if arg.startswith(f"{flag}=")]
    assert len(values) == 1, f"{flag} must be given once in {service['command']}"
    return values[0]


def _selector_labels() -> dict[str, str]:
    matchers = re.findall(r'(\w+)\s*=\s*"([^"]*)"', DEFAULT_CONFIG.selector)
    assert len(matchers) == DEFAULT_CONFIG.selector.count("="), DEFAULT_CONFIG.selector
    return dict(matchers)


def test_prometheus_scrapes_every_worker_under_the_mixin_selector(
    prometheus_config: dict[str, Any],
) -> None:
    labels = _selector_labels()
    # The compose stack sets only the job label; another selector label needs a target label.
    assert set(labels) == {"job"}, f"selector {DEFAULT_CONFIG.selector} needs more than a job"
    jobs = {job["job_name"]: job for job in prometheus_config["scrape_configs"]}
    assert labels["job"] in jobs, f"no scrape job named {labels['job']}: {sorted(jobs)}"
    workers = jobs[labels["job"]]
    assert "relabel_configs" not in workers  # nothing may rewrite the job label
    assert "static_configs" not in workers
    # Every replica of `worker` is a target of its own (Docker's DNS lists them all).
    assert workers["dns_sd_configs"] == [
        {"names": ["worker"], "type": "A", "port": WORKER_METRICS_PORT, "refresh_interval": "15s"}
    ]


def test_prometheus_container_loads_this_config_and_the_mixin_rules(
    services: dict[str, dict[str, Any]], prometheus_config: dict[str, Any]
) -> None:
    prometheus = services["prometheus"]
    config_in_container = _flag(prometheus, "--config.file")
    assert host_path(prometheus, config_in_container) == PROMETHEUS_CONFIG
    # Prometheus resolves rule_files against the config file's directory, in the container.
    config_dir = posixpath.dirname(config_in_container)
    rule_files = [
        host_path(prometheus, posixpath.join(config_dir, rule_file))
        for rule_file in prometheus_config["rule_files"]
    ]
    mixin = ROOT / "deploy" / "mixin"
    assert rule_files == [mixin / "rules.yaml", mixin / "alerts.yaml"]
    storage = _flag(prometheus, "--storage.tsdb.path")
    assert any(target == PurePosixPath(storage) for _, target, _ in _mounts(prometheus))


def test_prometheus_sends_alerts_to_the_compose_alertmanager(
    services: dict[str, dict[str, Any]], prometheus_config: dict[str, Any]
) -> None:
    (alertmanagers,) = prometheus_config["alerting"]["alertmanagers"]
    (targets,) = [config["targets"] for config in alertmanagers["static_configs"]]
    host, port = targets[0].split(":")
    assert targets == [f"{host}:{port}"] and host in services
    assert int(port) in {container for _, container in _published(services[host])}


def test_promtool_accepts_the_prometheus_config(promtool: str) -> None:
    result = run_in_root(promtool, "check", "config", str(PROMETHEUS_CONFIG.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout, result.stdout


def test_alertmanager_container_loads_the_repo_config(services: dict[str, dict[str, Any]]) -> None:
    alertmanager = services["alertmanager"]
    assert host_path(alertmanager, _flag(alertmanager, "--config.file")) == ALERTMANAGER_CONFIG
    storage = _flag(alertmanager, "--storage.path")
    assert any(target == PurePosixPath(storage) for _, target, _ in _mounts(alertmanager))


# --- Grafana ---------------------------------------------------------------------------------


def test_grafana_reads_this_repos_provisioning(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    assert "GF_PATHS_PROVISIONING" not in grafana.get("environment", {})
    for kind, path in (("datasources", DATASOURCES), ("dashboards", DASHBOARD_PROVIDERS)):
        in_container = GRAFANA_DEFAULT_PROVISIONING / kind / path.name
        assert host_path(grafana, str(in_container)) == path


def test_grafana_dashboards_come_from_the_mixin_output(
    services: dict[str, dict[str, Any]],
) -> None:
    grafana = services["grafana"]
    (provider,) = _load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert provider["type"] == "file"
    assert host_path(grafana, provider["options"]["path"]) == DASHBOARDS_OUT
    assert DASHBOARDS_OUT.is_dir(), f"{DASHBOARDS_OUT} is missing: render the mixin dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_path(grafana, home) == DASHBOARDS_OUT / "cx-overview.json"


def test_grafana_datasource_is_the_compose_prometheus_with_a_fixed_uid(
    services: dict[str, dict[str, Any]], prometheus_config: dict[str, Any]
) -> None:
    (datasource,) = _load_yaml(DATASOURCES)["datasources"]
    assert datasource["uid"] == DATASOURCE_UID
    assert datasource["type"] == "prometheus" and datasource["isDefault"] is True
    url = urlsplit(datasource["url"])
    assert url.hostname in services
    assert url.port in {container for _, container in _published(services[url.hostname])}
    # No query step finer than the scrape interval.
    assert datasource["jsonData"]["timeInterval"] == prometheus_config["global"]["scrape_interval"]


def _datasource_refs(node: Any) -> Iterator[dict[str, Any]]:
    """Every `"datasource": {...}` object in a dashboard (panels, targets, annotations)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict):
                yield value
            yield from _datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasource_refs(item)


@pytest.mark.parametrize("dashboard", ["cx-overview.json", "cx-pipeline-health.json"])
def test_dashboards_default_to_the_provisioned_datasource(dashboard: str) -> None:
    path = DASHBOARDS_OUT / dashboard
    assert path.is_file(), f"{path} is missing: render the mixin dashboards"
    document = json.loads(path.read_text(encoding="utf-8"))
    refs = list(_datasource_refs(document))
    assert refs, f"{dashboard} names no datasource"
    for ref in refs:
        uid = str(ref.get("uid", ""))
        if ref.get("type") == "grafana":  # Grafana's built-in annotations source
            assert uid == "-- Grafana --", (dashboard, ref)
            continue
        # A template variable ($datasource, ${datasource}) or the provisioned uid; nothing else.
        assert uid.startswith("$") or uid == DATASOURCE_UID, (dashboard, ref)
    variables = [
        variable
        for variable in document.get("templating", {}).get("list", [])
        if variable.get("type") == "datasource"
    ]
    for variable in variables:
        assert variable.get("query") == "prometheus", variable
        current = (variable.get("current") or {}).get("value")
        # Unset or "default" picks Grafana's default datasource, which is the provisioned one.
        assert current in (None, "", "default", DATASOURCE_UID), variable


# --- documentation ---------------------------------------------------------------------------


def _header_comment() -> str:
    lines = COMPOSE.read_text(encoding="utf-8").splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    return "\n".join(header)


def _readme_docker_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Running with Docker\n(.*?)(?=^## )", readme, re.MULTILINE | re.DOTALL)
    assert match is not None, "README.md has no '## Running with Docker' section"
    return match.group(1)


def test_published_ports_are_documented(services: dict[str, dict[str, Any]]) -> None:
    header, readme = _header_comment(), _readme_docker_section()
    for name, service in services.items():
        for host, container in _published(service):
            port = str(host if host is not None else container)
            assert re.search(rf"\b{port}\b", header), f"{name}: port {port} not in the header"
            assert re.search(rf"\b{port}\b", readme), f"{name}: port {port} not in the README"
    for text in (header, readme):
        assert "--scale worker=" in text
    assert DATASOURCE_UID in readme
