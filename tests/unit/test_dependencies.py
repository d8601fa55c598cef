"""What the shipped code imports is what the project declares: deptry over the code (pyproject's [tool.deptry]).

An image is built from ``[project] dependencies`` without the dev extra; code that imports a package the dev extra
alone declares (DEP004) would pass every test here and fail its first night in production.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _deptry() -> str:
    found = shutil.which("deptry", path=str(Path(sys.executable).parent))
    assert found, "deptry is not installed in this environment (the dev extra declares it: make install)"
    return found


def _plain(text: str) -> str:
    """Without the terminal colour codes deptry adds."""
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_the_shipped_code_imports_only_what_the_project_declares() -> None:
    result = subprocess.run([_deptry(), "."], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deptry_catches_a_runtime_import_of_a_dev_only_package(tmp_path: Path) -> None:
    """The check can fail: a module of a shipped package importing lightgbm (declared only in the dev extra)."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "pyproject.toml", project / "pyproject.toml")
    package = project / "training"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "boosted.py").write_text("import lightgbm\n")
    result = subprocess.run([_deptry(), "."], cwd=project, capture_output=True, text=True, timeout=300)
    report = result.stdout + result.stderr  # deptry reports through logging (stderr)
    assert result.returncode != 0
    assert "DEP004 'lightgbm' imported but declared as a dev dependency" in _plain(report), report
