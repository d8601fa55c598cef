"""The docker/ images and compose file, checked without a Docker engine: every file they name exists, the compose
file's references resolve, secrets never sit in it, and the entry points the images run exist in this checkout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from config.settings import REPO_ROOT

DOCKER = REPO_ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_the_four_images_exist() -> None:
    assert {p.name for p in DOCKERFILES} == {
        "airflow.Dockerfile", "trainer-cuda.Dockerfile", "trainer-gaudi.Dockerfile", "serving.Dockerfile"
    }


def test_every_service_builds_from_an_existing_dockerfile_or_a_pinned_image(compose: dict) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "mlflow", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
            "airflow-worker", "serving"} <= set(services)
    for name, service in services.items():
        if "build" in service:
            context = (COMPOSE.parent / service["build"]["context"]).resolve()
            assert context == REPO_ROOT, name
            assert (context / service["build"]["dockerfile"]).is_file(), name
        else:
            assert re.fullmatch(r"[\w./-]+:[\w.${}:-]+", service["image"]), (name, service["image"])
            assert not service["image"].endswith(":latest"), name


def test_every_file_the_compose_mounts_exists_or_is_a_documented_secret(compose: dict) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), (name, source)
            else:
                assert source in compose["volumes"], (name, source)
    ignored = (REPO_ROOT / ".gitignore").read_text()
    for secret in compose["secrets"].values():
        assert f"docker/{Path(secret['file']).name}" in ignored  # never committed
    example = (DOCKER / "stack.env.example").read_text()
    for variable in set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text())):
        assert f"{variable}=" in example, variable


def test_no_secret_values_in_the_compose_file() -> None:
    text = COMPOSE.read_text()
    for line in text.splitlines():
        if re.search(r"(PASSWORD|SECRET|API_KEY):\s*\S", line) and "${" not in line:
            pytest.fail(f"a literal secret in compose.yaml: {line.strip()}")
        if "@postgres" in line:
            assert "${POSTGRES_PASSWORD:?" in line, line


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_copied_path_exists(dockerfile: Path) -> None:
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert source == "." or (REPO_ROOT / source).exists(), (dockerfile.name, source)


def test_the_entry_points_the_images_run_exist() -> None:
    from click.testing import CliRunner

    from storefront.cli import main

    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0 and "--workers" in result.output
    serving = (DOCKER / "serving.Dockerfile").read_text()
    assert 'ENTRYPOINT ["tini", "--", "storefront"]' in serving and 'CMD ["serve"' in serving
    airflow_dags = {p.stem for p in (REPO_ROOT / "dags").glob("*.py")}
    assert "storefront_training" in airflow_dags  # what the serving admin call triggers
