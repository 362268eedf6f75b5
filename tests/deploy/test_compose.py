"""Static checks of the deployment files (no Docker engine here): compose wiring and the Dockerfile."""
import re
import shlex
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> list[str]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _instructions(dockerfile: list[str], name: str) -> list[str]:
    return [line[len(name):].strip() for line in dockerfile if line.upper().startswith(name + " ")]


def _pip_install_args(command: str) -> list[str]:
    """The arguments after `pip install` in a shell command, minus --upgrade pip runs."""
    tokens = shlex.split(command)
    for i in range(len(tokens) - 1):
        if tokens[i] == "pip" and tokens[i + 1] == "install" and "pip" not in tokens[i + 2:]:
            end = next((j for j in range(i + 2, len(tokens)) if tokens[j] in ("&&", ";")), len(tokens))
            return tokens[i + 2:end]
    return []


def _env(service: dict) -> dict:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return env


def test_services_are_postgres_api_and_worker(compose):
    assert set(compose["services"]) == {"postgres", "api", "worker"}


def test_postgres_is_16_with_a_named_volume_and_pg_isready(compose):
    pg = compose["services"]["postgres"]
    assert pg["image"].startswith("postgres:16.")
    volume, _, mount = pg["volumes"][0].partition(":")
    assert volume in compose["volumes"] and mount == "/var/lib/postgresql/data"
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])


def test_api_and_worker_build_this_image_and_wait_for_a_healthy_database(compose):
    for name in ("api", "worker"):
        service = compose["services"][name]
        assert service["build"] in (".", {"context": "."})
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        url = _env(service)["NEEDLE_DATABASE_URL"]
        assert url.startswith("postgresql://") and "@postgres:5432/" in url


def test_api_publishes_8000_on_loopback_unless_told_otherwise_and_runs_no_local_workers(compose):
    api = compose["services"]["api"]
    (port,) = [str(port) for port in api["ports"]]
    published, _, container = port.rpartition(":")
    assert container == "8000"
    match = re.fullmatch(r"\$\{(\w+):-([^}]*)\}", published)
    assert match and match.group(2) == "127.0.0.1:8000", port  # overridable, loopback by default
    assert "ports" not in compose["services"]["postgres"]   # the database is not published
    assert str(_env(api)["NEEDLE_WORKERS"]) == "0"
    assert api["command"][:2] == ["needle-service", "serve"] and "0.0.0.0" in api["command"]


REQUIRED = re.compile(r"\$\{(\w+):\?[^}]+\}")  # ${NAME:?message}: compose refuses to start without it


def test_secrets_come_from_the_environment_without_defaults(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    pg_password = compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert REQUIRED.fullmatch(pg_password) and REQUIRED.fullmatch(pg_password).group(1) == "POSTGRES_PASSWORD"
    for name in ("api", "worker"):
        url = _env(compose["services"][name])["NEEDLE_DATABASE_URL"]
        assert "${POSTGRES_PASSWORD:?" in url
    admin_key = _env(compose["services"]["api"])["NEEDLE_ADMIN_KEY"]
    assert REQUIRED.fullmatch(admin_key).group(1) == "NEEDLE_ADMIN_KEY"
    assert not re.search(r"(PASSWORD|KEY)(:-|-)", text), "a secret has a default"


def test_the_api_requires_keys(compose):
    assert _env(compose["services"]["api"])["NEEDLE_AUTH"] == "required"


def test_every_service_has_cpu_and_memory_limits(compose):
    for name, service in compose["services"].items():
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0 and re.fullmatch(r"\d+[mg]", str(limits["memory"])), name


def test_images_are_pinned(compose, dockerfile):
    for name, service in compose["services"].items():
        image = service["image"]
        assert not image.endswith(":latest") and re.search(r":\d+\.\d+", image), (name, image)
    (base,) = _instructions(dockerfile, "FROM")
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), base


def test_worker_runs_the_worker_command_with_configurable_replicas(compose):
    worker = compose["services"]["worker"]
    assert worker["command"][:2] == ["needle-service", "worker"]
    assert worker["deploy"]["replicas"] == "${WORKER_REPLICAS:-2}"
    assert "ports" not in worker  # replicas would fight over a published port
    assert worker["healthcheck"].get("disable") is True  # the image's check probes HTTP, which workers lack


def test_dockerfile_uses_python_311_slim_and_a_non_root_user(dockerfile):
    assert _instructions(dockerfile, "FROM")[0].startswith("python:3.11.")
    users = _instructions(dockerfile, "USER")
    assert users and users[-1] not in ("root", "0")


def test_dockerfile_healthcheck_probes_healthz_with_python(dockerfile):
    (check,) = _instructions(dockerfile, "HEALTHCHECK")
    assert "/healthz" in check and "python" in check and "curl" not in check


def test_dockerfile_serves_on_all_interfaces(dockerfile):
    assert _instructions(dockerfile, "CMD")[-1] == '["needle-service", "serve", "--host", "0.0.0.0"]'


def test_dockerfile_installs_like_the_makefile(dockerfile):
    makefile = (ROOT / "Makefile").read_text()
    make_lines = [line.replace("$(PY)", "python") for line in makefile.splitlines() if "pip install" in line]
    make_args = next(args for line in make_lines if "-e" in (args := _pip_install_args(line)))
    runs = _instructions(dockerfile, "RUN")
    assert any("-m venv" in run for run in runs) and "-m venv" in makefile
    assert any("pip install --quiet --upgrade pip" in run for run in runs)
    docker_args = next(args for run in runs if (args := _pip_install_args(run)))
    # Identical except: not editable, and without the dev extras.
    expected = [re.sub(r"\[dev\]$", "", arg) for arg in make_args if arg != "-e"]
    assert docker_args == expected


def test_dockerignore_keeps_the_context_small(dockerfile):
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", "data", "tests"):
        assert entry in ignored
    copied = " ".join(_instructions(dockerfile, "COPY"))
    assert all(path not in copied for path in ignored if path in ("tests", "api_tests", "bench"))
