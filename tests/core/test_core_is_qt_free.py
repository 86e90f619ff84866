import subprocess
import sys


def test_core_imports_without_qt_or_napari():
    code = (
        "import sys\n"
        "import napari_labelfree.core\n"
        "import napari_labelfree.core.predict.plan, napari_labelfree.core.bundle, napari_labelfree.core.io\n"
        "import napari_labelfree.cli\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui', 'superqt')]\n"
        "print(','.join(bad))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"Qt/napari imported by the core: {proc.stdout} {proc.stderr}"
