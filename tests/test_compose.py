"""Server mode: docker-compose.yml is valid and wires Kafka (KRaft), ClickHouse and the roles alike.

There is no Docker engine on the build machines, but Debian's ``docker-compose``
package validates and resolves a compose file without one (``docker-compose config``).
The resolved file is YAML in both compose v1 and v2, so it is parsed with PyYAML.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import click
import pytest

from callpulse.cli import main as cli

PROJECT_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
APP_SERVICES = ("topics", "migrate", "worker", "dashboard", "simulator")
LONG_RUNNING = ("kafka", "clickhouse", "worker", "dashboard", "simulator")
ONE_SHOT = ("topics", "migrate")


def _compose_bin() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        pytest.fail(
            "`docker-compose` is not on PATH: install Debian's docker-compose package "
            "(apt-get install -y --no-install-recommends docker-compose); "
            "these tests validate docker-compose.yml with it and must not be skipped"
        )
    return found


def _clean_env(**overrides: str) -> dict[str, str]:
    """The caller's environment minus anything that would change how the file interpolates."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLPULSE_", "COMPOSE_", "CLICKHOUSE_", "KAFKA_"))}
    env.update(overrides)
    return env


def _compose(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_compose_bin(), "-f", str(COMPOSE_FILE), *args],
        cwd=PROJECT_ROOT,
        env=_clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _resolved(**env: str) -> dict:
    try:
        import yaml
    except ImportError:
        pytest.fail("PyYAML is not installed: install the test extras (pip install -e '.[test]')")
    result = _compose("config", **env)
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def config() -> dict:
    return _resolved()


@pytest.fixture(scope="module")
def services(config) -> dict:
    return config["services"]


def _env(service: dict) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):  # KEY=VALUE list form
        raw = dict(item.split("=", 1) for item in raw)
    return {k: "" if v is None else str(v) for k, v in raw.items()}


def _published(service: dict) -> set[tuple[str, str]]:
    """(published, target) pairs, whichever way this compose version prints ports."""
    pairs = set()
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            pairs.add((str(port.get("published")), str(port["target"])))
        else:
            spec = str(port).split("/")[0]
            *_, published, target = spec.split(":")
            pairs.add((published, target))
    return pairs


def _depends(service: dict) -> dict[str, str]:
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return {name: "service_started" for name in raw}
    return {name: spec.get("condition", "service_started") for name, spec in raw.items()}


def test_compose_file_is_valid():
    result = _compose("config", "-q")
    assert result.returncode == 0, f"docker-compose config -q failed:\n{result.stderr}"


def test_services_exist(services):
    for name in ("kafka", "clickhouse", *APP_SERVICES):
        assert name in services, f"service {name!r} missing; have {sorted(services)}"


def test_app_services_build_the_repo_image(services):
    for name in APP_SERVICES:
        build = services[name].get("build")
        assert build, f"{name} is not built from the repository"
        context = build["context"] if isinstance(build, dict) else build
        assert Path(context).resolve() == PROJECT_ROOT, f"{name} builds {context}, not the repository"
    assert (PROJECT_ROOT / "Dockerfile").is_file()


def test_app_services_share_kafka_and_clickhouse(services):
    envs = {name: _env(services[name]) for name in APP_SERVICES}
    for key in ("KAFKA_BOOTSTRAP_SERVERS", "CLICKHOUSE_URL", "CALLPULSE_HMAC_KEY"):
        values = {name: env.get(key) for name, env in envs.items()}
        assert None not in values.values(), f"{key} missing from some services: {values}"
        assert len(set(values.values())) == 1, f"{key} differs between services: {values}"
    assert envs["worker"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_clickhouse_url_matches_the_server(services):
    url = urlparse(_env(services["worker"])["CLICKHOUSE_URL"])
    server = _env(services["clickhouse"])
    assert url.scheme == "http"
    assert (url.hostname, url.port) == ("clickhouse", 8123)
    assert url.username == server["CLICKHOUSE_USER"]
    assert url.password == server["CLICKHOUSE_PASSWORD"]
    assert url.path.strip("/") == server["CLICKHOUSE_DB"] == "callpulse"
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server")
    assert services["clickhouse"].get("healthcheck", {}).get("test"), "clickhouse needs a healthcheck"


def test_kafka_runs_single_node_kraft(services):
    kafka = services["kafka"]
    env = _env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "ZOOKEEPER" not in " ".join(env), "KRaft mode needs no ZooKeeper"
    node_id = env["KAFKA_NODE_ID"]
    controller_names = env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")
    listeners = dict(re.match(r"([A-Z_]+)://[^:]*:(\d+)", item).groups() for item in env["KAFKA_LISTENERS"].split(","))
    voter_id, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split("@")
    assert voter_id == node_id
    assert voter.split(":")[1] == listeners[controller_names[0]], "quorum voter is not the controller listener"
    # What the apps are told must be what the broker advertises.
    bootstrap = _env(services["worker"])["KAFKA_BOOTSTRAP_SERVERS"]
    assert f"PLAINTEXT://{bootstrap}" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"].lower() == "false", (
        "auto-created topics get the broker's partition count and break Faust"
    )
    assert env.get("CLUSTER_ID"), "the apache/kafka image needs CLUSTER_ID in KRaft mode"
    assert kafka.get("healthcheck", {}).get("test"), "kafka needs a healthcheck"


def test_dashboard_publishes_8050(services):
    assert ("8050", "8050") in _published(services["dashboard"])
    command = services["dashboard"]["command"]
    assert command[command.index("--host") + 1] == "0.0.0.0", "the dashboard must listen beyond loopback"


def test_startup_order(services):
    assert _depends(services["topics"]) == {"kafka": "service_healthy"}
    assert _depends(services["migrate"]) == {"clickhouse": "service_healthy"}
    worker = _depends(services["worker"])
    assert worker.get("topics") == worker.get("migrate") == "service_completed_successfully"
    assert _depends(services["simulator"]).get("topics") == "service_completed_successfully"


def test_restart_policies(services):
    for name in LONG_RUNNING:
        assert services[name].get("restart") == "unless-stopped", f"{name} should restart unless stopped"
    for name in ONE_SHOT:
        assert services[name].get("restart", "no") == "no", f"{name} is one-shot and must not restart"


def test_commands_parse_with_the_cli(services):
    """Every role's command is a real `callpulse` subcommand with options it accepts."""
    expected = {
        "topics": ["topics"],
        "migrate": ["migrate"],
        "worker": ["worker", "--no-dashboard", "--health-port", "6066"],
        "dashboard": ["dashboard", "--host", "0.0.0.0", "--port", "8050"],
        "simulator": ["simulate", "--speed", "1"],
    }
    for name, args in expected.items():
        command = [str(part) for part in services[name]["command"]]
        assert command == args, f"{name}: {command}"
        sub = cli.commands[command[0]]
        try:
            sub.make_context(command[0], command[1:])
        except click.ClickException as exc:
            pytest.fail(f"{name}: `callpulse {' '.join(command)}` does not parse: {exc.format_message()}")


def test_hmac_key_comes_from_the_environment():
    default = _resolved()["services"]
    assert _env(default["worker"])["CALLPULSE_HMAC_KEY"] == "change-me-in-production"
    given = _resolved(CALLPULSE_HMAC_KEY="a-real-secret")["services"]
    for name in APP_SERVICES:
        assert _env(given[name])["CALLPULSE_HMAC_KEY"] == "a-real-secret", name


def test_dockerfile_runs_callpulse_as_non_root():
    text = (PROJECT_ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r'^ENTRYPOINT \["callpulse"\]', text, re.M)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    assert "CALLPULSE_DATA_DIR=/data" in text
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored
