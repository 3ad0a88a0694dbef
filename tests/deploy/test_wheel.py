"""The product as a user installs it: the wheel is built from a copy of the sources, installed
into a fresh virtual environment outside the checkout, and `eventpipe run` processes the
first documents of the sample there, from a folder that is not the checkout.

To stay quick, the fresh environment does not download or install the dependencies again:
it gets this environment's site-packages as a plain path (a `.pth` line), which makes the
installed packages importable but not this checkout's editable `eventpipe` (that needs the
`.pth` files of that folder, which a plain path line does not run). The wheel itself is
installed with pip (`--no-deps --ignore-installed`), console script included. So what runs is
the wheel's code only, and a file the wheel lacks (a migration, a service) fails the test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = 12

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{cmd[:3]} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _build_wheel(work: Path) -> Path:
    # A copy, so the build leaves nothing (build/, egg-info) in the checkout.
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("libs", "services"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "--quiet", "-w", str(work / "dist"), str(src)], cwd=work)
    (wheel,) = (work / "dist").glob("eventpipe-*.whl")
    return wheel


def test_the_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    # What the product needs is in it; test and benchmark code is not.
    assert "eventpipe/storage/migrations/0001_initial.sql" in names
    assert any(n.startswith("services/sink/") for n in names)
    assert not [n for n in names if n.startswith(("tests/", "bench/"))
                or n.endswith(("corpus.py", "quality.py"))]

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                      "['purelib'])"], cwd=tmp_path).stdout.strip())
    (site / "_eventpipe_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
          "--no-deps", "--no-index", "--ignore-installed", str(wheel)], cwd=tmp_path)

    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    sample = run_dir / "sample.jsonl"
    lines = (ROOT / "examples" / "news_sample.jsonl").read_text().splitlines()[:DOCS]
    sample.write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("EVENTPIPE_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"

    where = _run([str(python), "-c", "import eventpipe, services; "
                  "print(eventpipe.__file__); print(services.__file__)"], cwd=run_dir, env=env)
    for path in where.stdout.split():
        assert Path(path).is_relative_to(venv), f"imported from outside the wheel: {path}"

    result = _run([str(venv / "bin" / "eventpipe"), "run", str(sample), "--batch-id",
                   "wheel", "--data-dir", str(run_dir / "data")], cwd=run_dir, env=env)
    assert "COMPLETED" in result.stdout, result.stdout + result.stderr
    results = run_dir / "data" / "extracted_events_wheel.jsonl"
    saved = [json.loads(line) for line in results.read_text().splitlines() if line]
    assert sorted(r["id"] for r in saved) == sorted(json.loads(x)["id"] for x in lines)
