"""The environment Airflow runs in for this project: its home, DAG and plugin folders, metadata database.

Embedded default: ``<var_root>/airflow`` with SQLite and LocalExecutor. Production: set
``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` (PostgreSQL) and the executor in the environment; what is already set
there wins over these defaults.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from config import get_settings
from config.settings import REPO_ROOT


def airflow_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default: this process's environment) with the project's Airflow settings filled in."""
    settings = get_settings()
    env = dict(os.environ if base is None else base)
    home = settings.var_root / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    defaults = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "STOREFRONT_VAR_ROOT": str(settings.var_root),
        "GX_ANALYTICS_ENABLED": "False",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
    }
    for key, value in defaults.items():
        env.setdefault(key, value)
    return env


def airflow_bin() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def run_airflow(args: list[str], *, env: dict[str, str] | None = None, log_file: Path | None = None,
                timeout: float | None = None,
                on_line: Callable[[str], None] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``airflow <args>``; output goes to ``log_file`` when given. Raises CalledProcessError on failure.

    ``on_line`` (with ``log_file``) sees every output line as it is written: the main job's progress display.
    """
    env = env or airflow_env()
    command = [airflow_bin(), *args]
    if log_file is None:
        return subprocess.run(command, env=env, check=True, capture_output=True, text=True, timeout=timeout)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as out:
        if on_line is None:
            return subprocess.run(command, env=env, check=True, stdout=out, stderr=subprocess.STDOUT, text=True,
                                  timeout=timeout)
        with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              bufsize=1) as process:
            assert process.stdout is not None
            for line in process.stdout:
                out.write(line)
                on_line(line)
            code = process.wait(timeout=timeout)
    if code:
        raise subprocess.CalledProcessError(code, command)
    return subprocess.CompletedProcess(command, code)


def prepare_metadata_db(env: dict[str, str] | None = None) -> None:
    """Create or upgrade the metadata database and parse the DAG files into it."""
    env = env or airflow_env()
    run_airflow(["db", "migrate"], env=env)
    run_airflow(["dags", "reserialize"], env=env)
