"""The command line, the core and a Dask worker never import napari or Qt.

`pip install napari-labelfree` (no extras) has neither, so any such import would break the
`labelfree` command and cluster workers. Each run below records, in every process it starts, the
GUI packages an `import` statement asked for (an audit hook installed by ``sitecustomize``, which
also runs in the worker processes Dask starts): the list must stay empty.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

GUI_PACKAGES = (
    "napari",
    "napari_builtins",
    "npe2",
    "magicgui",
    "qtpy",
    "superqt",
    "vispy",
    "PyQt5",
    "PyQt6",
    "PySide2",
    "PySide6",
)

SITECUSTOMIZE = textwrap.dedent(
    f"""
    import os, sys
    _GUI = {GUI_PACKAGES!r}
    _LOG = os.environ["LABELFREE_GUI_IMPORT_LOG"]

    def _record(event, args):
        if event == "import" and args[0].partition(".")[0] in _GUI:
            with open(_LOG, "a") as f:
                f.write(f"{{os.getpid()}} {{args[0]}}\\n")

    sys.addaudithook(_record)
    """
)


@pytest.fixture
def watched(tmp_path):
    """Run a Python command line with GUI imports recorded; returns (run, log path)."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "gui_imports.log"
    env = dict(os.environ, LABELFREE_GUI_IMPORT_LOG=str(log), OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook), env.get("PYTHONPATH")]))

    def run(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    return run, log


def _imports(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_the_recorder_sees_a_gui_import(watched):
    """The control: an import of a GUI package is recorded (even where it is not installed)."""
    run, log = watched
    run("-c", "import contextlib\nwith contextlib.suppress(ImportError): import qtpy")
    assert any(line.endswith(" qtpy") for line in _imports(log))


# the commands a user runs, one after another in one process (torch is imported once); the
# second prediction runs on a local Dask cluster, whose worker process runs the tasks
COMMANDS = [
    line.split()
    for line in [
        "synth field.ome.tif --shape 16,48,48 --structures dna --seed 1",
        "models",
        "predict field.ome.tif -m dna --channel bright-field -o one.ome.tif",
        "predict field.ome.tif -m dna --channel bright-field -o two.ome.zarr --workers 1",
        "train field.ome.tif -o mine --signal-channel bright-field --target-channel dna "
        "--iterations 2 --batch-size 1 --patch-shape 8,16,16 --depth 2 --width 4 --device cpu",
    ]
]


def test_cli_commands_and_a_dask_worker_import_no_gui(watched, tmp_path):
    run, log = watched
    run(
        "-c",
        "import sys\n"
        "from napari_labelfree.cli import main\n"
        f"for argv in {COMMANDS!r}:\n"
        "    if main(argv) != 0:\n"
        "        sys.exit(f'labelfree {argv} failed')\n",
    )
    assert (tmp_path / "one.ome.tif").is_file() and (tmp_path / "two.ome.zarr").is_dir()
    assert (tmp_path / "mine" / "config.json").is_file()
    assert _imports(log) == [], "GUI packages imported (pid, module):\n" + log.read_text()


def test_importing_the_package_and_its_core_imports_no_gui(watched):
    run, log = watched
    run(
        "-c",
        "import napari_labelfree, napari_labelfree.cli, napari_labelfree.core\n"
        "import napari_labelfree.core.predict, napari_labelfree.core.train\n"
        "import napari_labelfree.core.synth, napari_labelfree.core.io\n"
        "import napari_labelfree.core.interop.bioimageio\n"
        "from napari_labelfree.cli import build_parser; build_parser()\n",
    )
    assert _imports(log) == [], "GUI packages imported (pid, module):\n" + log.read_text()
