"""What pyproject.toml declares is what CI tests, and the build is clean.

CI (.ci/run, `tox -e floor`) runs the suite at the versions pinned in .ci/floor-requirements.txt;
every lower bound declared for users must be exactly such a pin, or the declared range would claim
versions nobody tested.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
FLOOR_PINS = ROOT / ".ci" / "floor-requirements.txt"
GUI = {"napari", "npe2", "magicgui", "qtpy", "superqt", "pyqt5", "pyqt6", "pyside2", "pyside6"}


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, Version]:
    pins = {}
    for line in FLOOR_PINS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[_name(name)] = Version(version)
    return pins


def _declared() -> list[Requirement]:
    extras = PROJECT["optional-dependencies"]
    lines = PROJECT["dependencies"] + extras["napari"] + extras["bioimageio"] + extras["testing"]
    return [Requirement(r) for r in lines if not r.startswith("napari-labelfree[")]


def test_every_declared_floor_is_the_version_ci_tests():
    pins = _pins()
    floors = {}
    for req in _declared():
        lows = [Version(s.version) for s in req.specifier if s.operator == ">="]
        if lows:
            floors[_name(req.name)] = lows[0]
            assert pins.get(_name(req.name)) == lows[0], (
                f"{req} is declared but CI's floor run installs {req.name} "
                f"{pins.get(_name(req.name))}: regenerate .ci/floor-requirements.txt (command in "
                "its header) or raise the floor"
            )
    assert {"numpy", "torch", "scipy", "napari", "bioio", "tifffile"} <= set(floors)


def test_the_readme_names_the_floors_ci_installs():
    readme = (ROOT / "README.md").read_text()
    listed = readme[readme.index("pinned in `.ci/floor-requirements.txt`\n  (") :]
    listed = listed[: listed.index(")")]
    named = re.findall(r"([a-zA-Z][\w.\-\[\]]*) (\d[\w.]*)", listed)
    assert len(named) >= 10, listed
    pins = _pins()
    for name, version in named:
        name = _name(name.split("[")[0])
        assert pins.get(name) == Version(version), f"README says {name} {version}"


def test_declared_pythons_are_the_tested_one():
    assert PROJECT["requires-python"] == ">=3.11"
    pythons = [c for c in PROJECT["classifiers"] if re.fullmatch(r".*:: Python :: 3\.\d+", c)]
    assert pythons == ["Programming Language :: Python :: 3.11"]
    # .ci/run makes every venv with the same interpreter; the floor pins are for 3.11
    assert "--python-version 3.11" in FLOOR_PINS.read_text()


def test_the_plain_install_has_no_napari_and_no_qt():
    """`pip install napari-labelfree` is the lean CLI/cluster install; the GUI is an extra."""
    base = {_name(Requirement(r).name) for r in PROJECT["dependencies"]}
    assert not base & GUI
    assert {"napari", "magicgui", "qtpy"} <= {
        _name(Requirement(r).name) for r in PROJECT["optional-dependencies"]["napari"]
    }
    assert any(
        r.startswith("napari-labelfree[napari") for r in PROJECT["optional-dependencies"]["testing"]
    )


def _source_copy(dst: Path) -> Path:
    """The files a clean clone has (no caches, builds or virtual environments)."""
    skip = shutil.ignore_patterns(
        "__pycache__", "*.pyc", "*.egg-info", ".venv*", "build", "dist", ".tox", ".*_cache"
    )
    for name in ("src", "tests", "docs", "benchmarks", "scripts", ".ci"):
        shutil.copytree(ROOT / name, dst / name, ignore=skip)
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "tox.ini"):
        shutil.copy2(ROOT / name, dst / name)
    return dst


def test_the_build_prints_no_warning_and_the_sdist_can_run_the_tests(tmp_path):
    pytest.importorskip("build", reason="the `build` package is absent")
    setuptools = pytest.importorskip("setuptools")
    if Version(setuptools.__version__) < Version("77"):
        pytest.skip(f"setuptools {setuptools.__version__} here; the build needs 77 or newer")
    src = _source_copy(tmp_path / "src")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path / "dist"), "."],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # setuptools says "WARNING ...", "warning: ...", "!!" banners or "...Warning: ..."
    noisy = [
        line
        for line in out.splitlines()
        if re.match(r"\s*(\w*warning\b|!!)", line, re.I) or re.search(r"\w+Warning:", line)
    ]
    assert not noisy, "\n".join(noisy)

    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"tests/conftest.py", "tox.ini", ".ci/run", ".ci/floor-requirements.txt"} <= names
    assert {"docs/user-guide.md", "pyproject.toml", "LICENSE"} <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]

    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as whl:
        meta = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = whl.read(meta).decode()
        files = whl.namelist()
    assert "License-Expression: BSD-3-Clause" in metadata
    assert "napari_labelfree/napari.yaml" in files
    assert any(n.endswith("models/dna/weights.safetensors") for n in files)
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert not [
        r
        for r in requires
        if "extra ==" not in r and _name(Requirement(r.split(":", 1)[1]).name) in GUI
    ]
