"""`labelfree import` of pytorch_fnet folders, then `labelfree predict`, against fnet's predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_labelfree.cli import main

# ../shared/data beside the repository, as tests/conftest.py's SHARED_DATA
FNET = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fnet-models"
needs_fnet = pytest.mark.skipif(
    not (FNET / "PROVENANCE.md").is_file(),
    reason=f"pytorch_fnet model folders absent ({FNET})",
)


def _tif(path) -> np.ndarray:
    import tifffile

    return tifffile.imread(path).astype(np.float32)


def _r(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@needs_fnet
def test_import_release_1_then_predict_agrees_with_fnet(tmp_path, capsys):
    from scipy.ndimage import zoom

    model = tmp_path / "dna"
    assert main(["import", str(FNET / "release_1" / "saved_models" / "dna"), "-o", str(model)]) == 0
    err = capsys.readouterr().err
    assert "assuming the paper's data" in err and "--data-voxel-size" in err
    out = tmp_path / "pred.ome.tif"
    signal = FNET / "release_1" / "signal.ome.tif"  # 32x160x160 at (0.29, 0.108, 0.108) um
    rc = main(["predict", str(signal), "-m", str(model), "-o", str(out), "--precision", "fp32"])
    assert rc == 0
    ours = _tif(out)  # TCZYX with T = C = 1, squeezed by tifffile
    assert ours.shape == (32, 160, 160)
    # fnet's grid: its Resizer's zoom of the 160x160 input to 60x60 (scipy.ndimage.zoom, corner
    # to corner), cropped to 48x48 at offset 6; our prediction sampled at those voxels
    factor = 0.372410
    on_fnet_grid = zoom(ours, (1, factor, factor), mode="nearest")[:, 6:54, 6:54]
    fnet = _tif(FNET / "release_1" / "prediction_fnet.tif")
    # fnet predicted the crop alone, so its outer 4 voxels saw zeros where the image goes on
    # (fnet's own network on the uncropped input differs there by up to 1.5); compare inside
    inner = np.s_[:, 4:-4, 4:-4]
    assert _r(on_fnet_grid[inner], fnet[inner]) >= 0.99


@needs_fnet
def test_import_master_needs_data_voxel_size_then_predicts(tmp_path, capsys):
    folder = str(FNET / "master" / "model_dna")
    model = tmp_path / "dna"
    assert main(["import", folder, "-o", str(model)]) == 2
    assert "--data-voxel-size" in capsys.readouterr().err
    assert not model.exists()
    assert main(["import", folder, "-o", str(model), "--data-voxel-size", "0.29,0.29,0.29"]) == 0
    assert "center-slices" in capsys.readouterr().out
    out = tmp_path / "pred.ome.tif"
    signal = FNET / "master" / "signal.tif"  # no physical sizes: the model's, with a warning
    rc = main(
        ["predict", signal.as_posix(), "-m", str(model), "-o", str(out), "--precision", "fp32"]
    )
    assert rc == 0
    # same grid and normalization; only the tiling differs (fnet: pieces of 32 slices)
    assert _r(_tif(out), _tif(FNET / "master" / "prediction_fnet.tif")) >= 0.99
    assert main(["import", folder, "-o", str(model), "--data-voxel-size", "0.29,0.29,0.29"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_export_then_import_from_the_command_line(tmp_path, capsys):
    pytest.importorskip("bioimageio.spec", reason="bioimageio.spec absent (extra 'bioimageio')")
    from napari_labelfree.core.bundle import save_bundle
    from napari_labelfree.core.config import Architecture, ModelSpec
    from napari_labelfree.core.unet import UNet3D, randomize_batchnorm

    arch = Architecture(depth=2, width=4)
    torch.manual_seed(0)  # its weights, not whatever the tests before left in torch's generator
    net = randomize_batchnorm(UNet3D(arch), seed=1)  # acts like a trained one
    with torch.no_grad():  # and predicts some positive values, as export's test output must have
        net.head.bias.fill_(1.0)
    model = save_bundle(tmp_path / "dna", ModelSpec("dna", architecture=arch), net.state_dict())
    package = tmp_path / "dna.zip"
    assert main(["export", str(model), "-o", str(package)]) == 0
    assert main(["export", str(model), "-o", str(package)]) == 2  # never overwritten unasked
    assert "already exists" in capsys.readouterr().err
    back = tmp_path / "back"
    assert main(["import", str(package), "-o", str(back), "--structure", "nucleus"]) == 0
    assert "nucleus (blue)" in capsys.readouterr().out
    assert (
        main(["import", str(package), "-o", str(tmp_path / "x"), "--data-voxel-size", "1,1,1"]) == 2
    )
    assert "--data-voxel-size is for pytorch_fnet" in capsys.readouterr().err
