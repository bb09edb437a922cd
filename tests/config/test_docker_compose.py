"""docker-compose.yml is valid for Debian's docker-compose 1.29 and wires every FleetPatch process to the
same database and broker. Needs the `docker-compose` binary (CI installs it; elsewhere: skipped)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_service

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = {"migrate", "web", "worker", "worker-sweep", "worker-alerts", "beat"}
WORKERS = {"worker": "default,ingest", "worker-sweep": "sweep", "worker-alerts": "alerts"}
ENVIRONMENT = {
    "SECRET_KEY": "compose-test-secret-key-compose-test-secret-key-0123456789",
    "POSTGRES_PASSWORD": "compose-test-password",
    "ALLOWED_HOSTS": "fleetpatch.example.org",
    "SITE_URL": "https://fleetpatch.example.org",
    "PROXY_SITE_ADDRESS": "fleetpatch.example.org",
}


def docker_compose_config(tmp_path: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    require_service(binary is not None, "docker-compose is not installed (apt-get install docker-compose)")
    assert binary is not None
    # An empty --env-file keeps a developer's own .env out of what is being tested.
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **environment}
    return subprocess.run(
        [binary, "--env-file", str(empty_env_file), "-f", "docker-compose.yml", "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def compose(tmp_path: Path) -> dict:
    result = docker_compose_config(tmp_path, **ENVIRONMENT)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_declares_the_production_services(compose: dict) -> None:
    assert set(compose["services"]) == APP_SERVICES | {"postgres", "redis", "mailpit", "proxy"}
    assert compose["services"]["postgres"]["image"] == "postgres:15"
    assert compose["services"]["redis"]["image"] == "redis:7"
    assert compose["services"]["mailpit"]["image"].startswith("axllent/mailpit")


def test_every_fleetpatch_process_uses_the_same_database_broker_and_secret(compose: dict) -> None:
    environments = {name: compose["services"][name]["environment"] for name in APP_SERVICES}

    for variable in ("DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "EMAIL_URL", "ALLOWED_HOSTS", "SITE_URL"):
        values = {name: environment.get(variable) for name, environment in environments.items()}
        assert len(set(values.values())) == 1, f"{variable} differs between services: {values}"

    web = environments["web"]
    assert web["DATABASE_URL"] == "postgres://fleetpatch:compose-test-password@postgres:5432/fleetpatch"
    assert web["CELERY_BROKER_URL"] == "redis://redis:6379/0"
    assert web["EMAIL_URL"] == "smtp://mailpit:1025"
    assert web["SECRET_KEY"] == ENVIRONMENT["SECRET_KEY"]


def test_processes_run_gunicorn_workers_per_queue_and_one_database_beat(compose: dict) -> None:
    services = compose["services"]

    assert services["web"]["command"][:2] == ["gunicorn", "config.wsgi"]
    for name, queues in WORKERS.items():
        worker = services[name]["command"]
        assert worker[:4] == ["celery", "-A", "config", "worker"]
        assert worker[worker.index("--queues") + 1] == queues
    beat = services["beat"]["command"]
    assert beat[:4] == ["celery", "-A", "config", "beat"]
    assert beat[beat.index("--scheduler") + 1] == "django_celery_beat.schedulers:DatabaseScheduler"
    assert services["migrate"]["command"][-2:] == ["migrate", "--no-input"]
    for name in APP_SERVICES:
        assert services[name]["build"]["context"] == str(ROOT)


def test_application_services_start_after_healthy_services_and_applied_migrations(compose: dict) -> None:
    services = compose["services"]

    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]
    assert services["postgres"]["volumes"], "the database needs a volume"
    for name in ("web", *WORKERS, "beat"):
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully"
        assert depends_on["postgres"]["condition"] == "service_healthy"
        assert depends_on["redis"]["condition"] == "service_healthy"


def test_compose_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    environment = {name: value for name, value in ENVIRONMENT.items() if name != "SECRET_KEY"}

    result = docker_compose_config(tmp_path, **environment)

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_web_and_workers_scale_out_while_beat_stays_single(compose: dict) -> None:
    services = compose["services"]

    assert services["web"]["deploy"]["replicas"] >= 2
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert services["worker-sweep"]["deploy"]["replicas"] >= 2
    assert "deploy" not in services["beat"], "one beat for the whole deployment, or schedules fire twice"
    # Every queue the application routes tasks to has a worker consuming it.
    from django.conf import settings

    consumed = {queue for queues in WORKERS.values() for queue in queues.split(",")}
    assert {queue.name for queue in settings.CELERY_TASK_QUEUES} == consumed


def test_every_task_is_routed_to_a_queue_by_its_kind() -> None:
    from config.celery import app

    app.loader.import_default_modules()
    route = app.amqp.router.route
    expected = {
        "fleet.dispatch_digests": "alerts",
        "fleet.send_digest": "alerts",
        "updates.sweep_compliance": "sweep",
        "updates.sweep_range": "sweep",
        "updates.refresh_rollouts": "sweep",
        "devices.prune_check_ins": "sweep",
        "devices.ensure_check_in_partitions": "sweep",
        "updates.recompute_model": "ingest",
        "updates.recompute_organisation": "ingest",
        "devices.preview_import": "ingest",
        "devices.apply_import": "ingest",
    }
    ours = {name for name in app.tasks if name.split(".")[0] in {"fleet", "updates", "devices"}}
    assert ours == set(expected), "decide which queue a new task belongs to (CELERY_TASK_ROUTES) and add it here"
    for name, queue in expected.items():
        assert route({}, name)["queue"].name == queue, name


def published_ports(service: dict) -> list[tuple[str, str]]:
    """(host address, host port) of each port a service publishes; "" is every interface of the host."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.append((port.get("host_ip", ""), str(port["published"])))
            continue
        parts = str(port).split("/")[0].split(":")
        found.append((parts[0], parts[1]) if len(parts) == 3 else ("", parts[0]))
    return found


def test_only_the_proxy_is_published_and_the_mail_catcher_on_loopback_only(compose: dict) -> None:
    """gunicorn believes X-Forwarded-For from its one trusted proxy: reachable directly, anyone could write it.
    Mailpit's UI shows every digest and every unsubscribe link."""
    services = compose["services"]

    assert published_ports(services["proxy"]) == [("", "80"), ("", "443")]
    assert published_ports(services["mailpit"]) == [("127.0.0.1", "8025")]
    for name, service in services.items():
        if name not in {"proxy", "mailpit"}:
            assert published_ports(service) == [], f"{name} must not be published"
    assert services["web"]["environment"]["TRUSTED_PROXY_COUNT"] == "1"
    assert services["proxy"]["environment"]["PROXY_SITE_ADDRESS"] == "fleetpatch.example.org"
    assert any(volume.endswith(":/etc/caddy/Caddyfile:ro") for volume in _volumes(services["proxy"]))


def _volumes(service: dict) -> list[str]:
    return [
        volume
        if isinstance(volume, str)
        else f"{volume['source']}:{volume['target']}{':ro' if volume.get('read_only') else ''}"
        for volume in service.get("volumes", [])
    ]


def test_compose_refuses_to_start_without_the_proxy_site_address(tmp_path: Path) -> None:
    environment = {name: value for name, value in ENVIRONMENT.items() if name != "PROXY_SITE_ADDRESS"}

    result = docker_compose_config(tmp_path, **environment)

    assert result.returncode != 0
    assert "PROXY_SITE_ADDRESS" in result.stderr


def test_the_caddyfile_is_valid_for_caddy(tmp_path: Path) -> None:
    binary = shutil.which("caddy")
    require_service(binary is not None, "caddy is not installed (apt-get install caddy)")
    assert binary is not None
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    env["PROXY_SITE_ADDRESS"] = "fleetpatch.example.org"

    result = subprocess.run(
        [binary, "validate", "--adapter", "caddyfile", "--config", str(ROOT / "deploy" / "Caddyfile")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "Valid configuration" in result.stdout + result.stderr
