"""The bad-input catalogue: each case a mistake or fault a user meets, run through `labelfree`.

Each case must end with its exit status (2 for a user error, argparse's 2 for a malformed flag),
one line on stderr naming the problem (``match``), no traceback, and nothing written: the working
folder and the shared inputs are byte-for-byte as before.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shlex
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
from bad_input_harness import break_model, message_line, run_cli, snapshot

from napari_labelfree.core.io import write_ome_tiff

P = "predict {good} --channel bright-field -m {model}"  # a predict that is fine so far
OUT = "-o {w}/out.ome.tif"


# ---- files that break in ways users meet -------------------------------------------------------


def _stack(rng=None) -> np.ndarray:
    rng = rng or np.random.default_rng(3)
    return rng.normal(100, 10, size=(8, 16, 16)).astype(np.float32)


def fifo(w, a):
    os.mkfifo(w / "pipe.tif")


def empty(w, a):
    (w / "empty.tif").write_bytes(b"")
    (w / "empty.ome.tif").write_bytes(b"")


def garbage(w, a):
    (w / "garbage.tif").write_bytes(np.random.default_rng(0).bytes(5000))
    (w / "notes.czi").write_text("not an image at all\n")


def truncated(w, a):
    data = a.good.read_bytes()
    (w / "cut.ome.tif").write_bytes(data[: len(data) // 2])
    tifffile.imwrite(w / "whole.tif", _stack())
    data = (w / "whole.tif").read_bytes()
    (w / "cut.tif").write_bytes(data[: len(data) * 2 // 3])
    (w / "whole.tif").unlink()
    (w / "header-only.tif").write_bytes(data[:8])


def lying_headers(w, a):
    """Headers that claim 100,000 time points for a file of 16 pages."""
    write_ome_tiff(w / "lie.ome.tif", np.zeros((1, 1, 16, 16, 16), np.float32), None, ["bf"])
    desc = tifffile.tiffcomment(w / "lie.ome.tif")
    tifffile.tiffcomment(w / "lie.ome.tif", desc.replace('SizeT="1"', 'SizeT="100000"').encode())
    shutil.copy(w / "lie.ome.tif", w / "lie-bioio.tif")  # not named .ome.tif: bioio reads it
    tifffile.imwrite(w / "lie-ij.tif", np.zeros((16, 16, 16), np.uint16), imagej=True)
    desc = tifffile.tiffcomment(w / "lie-ij.tif")
    tifffile.tiffcomment(
        w / "lie-ij.tif",
        desc.replace("images=16", "images=1600000").replace(
            "slices=16", "slices=16\nframes=100000"
        ),
    )


def corrupt_pixels(w, a):
    """A well-formed header over compressed pixels that do not decompress: fails on reading."""
    write_ome_tiff(w / "bad-pixels.ome.tif", _stack()[None, None], None, ["bf"], (0.29,) * 3)
    tifffile.imwrite(
        w / "bad-pixels.ome.tif",
        _stack()[None, None],
        ome=True,
        compression="zlib",
        metadata={
            "axes": "TCZYX",
            "PhysicalSizeZ": 0.29,
            "PhysicalSizeY": 0.29,
            "PhysicalSizeX": 0.29,
        },
    )
    with tifffile.TiffFile(w / "bad-pixels.ome.tif") as tf:
        offset = tf.pages[3].dataoffsets[0]
    with open(w / "bad-pixels.ome.tif", "r+b") as f:
        f.seek(offset)
        f.write(b"\x00junk" * 8)


def odd_images(w, a):
    rng = np.random.default_rng(1)
    tifffile.imwrite(w / "plane.tif", _stack()[0])
    rgb = rng.integers(0, 255, size=(8, 16, 16, 3)).astype(np.uint8)
    tifffile.imwrite(w / "rgb.tif", rgb, photometric="rgb")
    tifffile.imwrite(w / "rgb.ome.tif", rgb, ome=True, photometric="rgb", metadata={"axes": "ZYXS"})
    tifffile.imwrite(w / "complex.tif", (_stack() * (1 + 1j)).astype(np.complex64))


def bioio_fails_late(w, a, monkeypatch):
    """bioio opens the file, then fails on its dims or on reading a frame (a damaged CZI)."""
    import bioio

    (w / "late-dims.czi").write_bytes(b"CZI fake")
    (w / "late-frame.czi").write_bytes(b"CZI fake")

    class Dims:
        T, C, Z, Y, X = 1, 1, 8, 16, 16

    class Fake:
        def __init__(self, path, **kw):
            self.path = Path(path)
            self.channel_names = ["bf"]
            self.physical_pixel_sizes = type("P", (), {"Z": 0.29, "Y": 0.29, "X": 0.29})()
            self.dtype = np.uint16

        @property
        def dims(self):
            if self.path.name == "late-dims.czi":
                raise ValueError("subblock directory damaged")
            return Dims()

        def get_image_dask_data(self, *a, **k):
            raise OSError(5, "Input/output error: segment 7 unreadable")

    monkeypatch.setattr(bioio, "BioImage", Fake)


def existing_outputs(w, a):
    (w / "out.ome.tif").write_bytes(b"precious")
    (w / "afile").write_text("a file, not a folder")
    (w / "taken.csv").write_text("keep me")
    (w / "taken.zip").write_text("keep me")
    (w / "taken.png").write_text("keep me")
    shutil.copytree(a.model, w / "existing-model")
    shutil.copy(a.good, w / "copy.ome.tif")
    shutil.copy(a.good, w / "second.ome.tif")
    (w / "sub").mkdir()
    shutil.copy(a.good, w / "sub" / "copy.ome.tif")
    (w / "folder.ome.zarr").mkdir()  # named like a store, holding the user's files
    (w / "folder.ome.zarr" / "notes.txt").write_text("keep me")
    (w / ".in-the-way.ome.zarr.partial").write_text("a file at the partial store's name")


def broken_models(w, a):
    for how in (
        "not-json",
        "list",
        "schema-abc",
        "wrong-type",
        "no-weights",
        "garbage-weights",
        "weights-misfit",
        "nan-weights",
        "binary-config",
        "unknown-architecture-key",
    ):
        shutil.copytree(a.model, w / how)
        break_model(w / how, how)
    (w / "empty-folder").mkdir()


def pair_data(w, a):
    rng = np.random.default_rng(2)
    write_ome_tiff(w / "sig.ome.tif", _stack()[None, None], None, ["bf"], (0.29,) * 3)
    write_ome_tiff(
        w / "tgt.ome.tif",
        rng.normal(size=(1, 1, 6, 12, 12)).astype(np.float32),
        None,
        ["dna"],
        (0.29,) * 3,
    )
    (w / "mismatch.csv").write_text("signal,target\nsig.ome.tif,tgt.ome.tif\n")
    (w / "nocols.csv").write_text("a,b\n1,2\n")
    # a maximum projection as the target (one plane), and a file of two positions (scenes)
    write_ome_tiff(w / "proj.ome.tif", _stack().max(axis=0)[None, None, None], None, ["dna"])
    (w / "proj.csv").write_text("signal,target\nsig.ome.tif,proj.ome.tif\n")
    with tifffile.TiffWriter(w / "wells.ome.tif", ome=True) as tw:
        for k in range(2):
            tw.write(_stack(), metadata={"axes": "ZYX", "Name": f"Position {k + 1}"})
    (w / "scenes.csv").write_text("signal,target\nwells.ome.tif,proj.ome.tif\n")


def code_pickles(w, a):
    """A pytorch_fnet-like model.p whose unpickling would run code, and zips that are no package."""
    (w / "evil").mkdir()
    (w / "evil" / "model.p").write_bytes(pickle.dumps({"state": Path("/etc/passwd")}))
    (w / "evil" / "train_options.json").write_text("{}")
    with zipfile.ZipFile(w / "notpkg.zip", "w") as z:
        z.writestr("hello.txt", "no rdf.yaml here")
    (w / "fake.zip").write_bytes(b"PK not a zip")


def bad_packages(w, a):
    """bioimage.io packages whose rdf.yaml is broken, runs code, or points outside the package."""
    weights = "weights:\n  pytorch_state_dict:\n    source: {}\n    sha256: {}\n"
    sha = "0" * 64
    rdfs = {
        "not-yaml": "type: model\nname: [unclosed\n",
        "python-tag": f"type: model\nname: !!python/object/apply:os.mkdir ['{w}/ran']\n",
        "weights-outside": weights.format("../../outside.pt", sha),
        "weights-absolute": weights.format(str(w / "outside.pt"), sha),
        "weights-url": weights.format("https://127.0.0.1:9/w.pt", sha),
        "weights-missing": weights.format("weights.pt", sha),
    }
    (w / "outside.pt").write_bytes(b"not these bytes")
    for name, rdf in rdfs.items():
        with zipfile.ZipFile(w / f"{name}.zip", "w") as z:
            z.writestr("rdf.yaml", rdf)
            z.writestr("unet.py", "# the architecture")


def bad_fnet_models(w, a):
    """pytorch_fnet folders whose model.p is text, a folder, or holds nn_state as a list."""
    import torch

    for name in ("fnet-text", "fnet-list", "fnet-folder"):
        (w / name).mkdir()
        (w / name / "train_options.json").write_text("{}")
    (w / "fnet-text" / "model.p").write_text("a text file, not a model\n")
    torch.save({"nn_state": [1, 2, 3], "nn_module": "fnet_nn_3d"}, w / "fnet-list" / "model.p")
    (w / "fnet-folder" / "model.p").mkdir()


def zarr_holes(w, a):
    """OME-Zarr inputs with chunks missing from the store: where Zarr leaves them undefined (no
    fill value) or the whole frame (a store copied in part). A chunk left out of an array with a
    fill value is legal Zarr (test_zarr_inputs.py)."""
    from napari_labelfree.core.io import open_prediction_output

    for name in ("holes", "no-chunks"):
        out = open_prediction_output(
            w / f"{name}.ome.zarr",
            ["bf"],
            ["gray"],
            (8, 16, 16),
            (0.29,) * 3,
            1,
            chunks_zyx=(4, 16, 16),
        )
        out.write_frame(0, {"bf": _stack()})
        out.commit()
    shutil.copytree(w / "holes.ome.zarr", w / "bad-attrs.ome.zarr")
    (w / "bad-attrs.ome.zarr" / ".zattrs").write_text('{"multiscales": [')
    (w / "empty.ome.zarr").mkdir()
    chunks = sorted(
        p for p in (w / "holes.ome.zarr").rglob("*") if p.is_file() and p.name.isdigit()
    )
    chunks[-1].unlink()
    zarray = w / "holes.ome.zarr" / "0" / ".zarray"  # Zarr v2: "no fill value", allowed there
    zarray.write_text(json.dumps({**json.loads(zarray.read_text()), "fill_value": None}))
    for p in (w / "no-chunks.ome.zarr").rglob("*"):
        if p.is_file() and p.name.isdigit():
            p.unlink()


SETUPS: dict[str, Callable] = {
    f.__name__: f
    for f in (
        fifo,
        empty,
        garbage,
        truncated,
        lying_headers,
        corrupt_pixels,
        odd_images,
        existing_outputs,
        broken_models,
        pair_data,
        code_pickles,
        zarr_holes,
        bad_packages,
        bad_fnet_models,
    )
}
MONKEY_SETUPS = {"bioio_fails_late": bioio_fails_late}


@dataclass(frozen=True)
class Case:
    id: str
    args: str  # formatted with w (work folder), good, plain, model, zoo; split like a shell
    match: str  # what the one line must say (a regular expression, case-insensitive)
    setup: str | None = None
    code: int = 2


CASES = [
    # ---- predict: the input file ---------------------------------------------------------------
    Case("missing-file", "predict {w}/nope.tif -m {model} " + OUT, "does not exist"),
    Case("input-is-a-folder", "predict {w} -m {model} " + OUT, "is a folder"),
    Case("fifo", "predict {w}/pipe.tif -m {model} " + OUT, "not a regular file", "fifo"),
    Case("fifo-dev-zero", "predict /dev/zero -m {model} " + OUT, "not a regular file"),
    Case("empty-tif", "predict {w}/empty.tif -m {model} " + OUT, "empty \\(0 bytes\\)", "empty"),
    Case(
        "empty-ome-tif",
        "predict {w}/empty.ome.tif -m {model} " + OUT,
        "empty \\(0 bytes\\)",
        "empty",
    ),
    Case(
        "random-bytes-tif",
        "predict {w}/garbage.tif -m {model} " + OUT,
        "cannot read .*garbage.tif \\(Unsupported",
        "garbage",
    ),
    Case("text-as-czi", "predict {w}/notes.czi -m {model} " + OUT, "cannot read", "garbage"),
    Case(
        "truncated-ome-fast-path",
        "predict {w}/cut.ome.tif -m {model} " + OUT,
        "truncated",
        "truncated",
    ),
    Case("truncated-tif-bioio", "predict {w}/cut.tif -m {model} " + OUT, "truncated", "truncated"),
    Case(
        "header-only-tif",
        "predict {w}/header-only.tif -m {model} " + OUT,
        "holds no images|truncated",
        "truncated",
    ),
    Case(
        "100000-timepoints-ome",
        "predict {w}/lie.ome.tif -m {model} " + OUT,
        "truncated or corrupt",
        "lying_headers",
    ),
    Case(
        "100000-timepoints-bioio",
        "predict {w}/lie-bioio.tif -m {model} " + OUT,
        "truncated or corrupt",
        "lying_headers",
    ),
    Case(
        "100000-timepoints-imagej",
        "predict {w}/lie-ij.tif -m {model} " + OUT,
        "truncated or corrupt",
        "lying_headers",
    ),
    Case(
        "corrupt-pixels-fast-path",
        "predict {w}/bad-pixels.ome.tif -m {model} " + OUT,
        "cannot read time point 0.*truncated or corrupt",
        "corrupt_pixels",
    ),
    Case(
        "bioio-dims-fail",
        "predict {w}/late-dims.czi -m {model} " + OUT,
        "cannot read.*truncated or corrupt",
        "bioio_fails_late",
    ),
    Case(
        "bioio-frame-fail",
        "predict {w}/late-frame.czi -m {model} --voxel-size 0.29,0.29,0.29 " + OUT,
        "cannot read time point 0.*truncated or corrupt",
        "bioio_fails_late",
    ),
    Case(
        "2d-image", "predict {w}/plane.tif -m {model} " + OUT, "is 2D \\(one z-plane", "odd_images"
    ),
    Case("rgb-z-stack", "predict {w}/rgb.tif -m {model} " + OUT, "colour \\(RGB\\)", "odd_images"),
    Case(
        "rgb-ome-z-stack",
        "predict {w}/rgb.ome.tif -m {model} " + OUT,
        "colour \\(RGB\\)",
        "odd_images",
    ),
    Case(
        "complex-data",
        "predict {w}/complex.tif -m {model} " + OUT,
        "holds complex numbers",
        "odd_images",
    ),
    Case(
        "zarr-chunk-missing-no-fill-value",
        "predict {w}/holes.ome.zarr -m {model} " + OUT,
        "time point 0, channel 0 of .*holes.ome.zarr: 1 of its 2 chunks are not in the store "
        "and the array defines no fill value",
        "zarr_holes",
    ),
    Case(
        "zarr-broken-zattrs",
        "predict {w}/bad-attrs.ome.zarr -m {model} " + OUT,
        "its .zattrs is not valid JSON",
        "zarr_holes",
    ),
    Case(
        "zarr-empty-folder",
        "predict {w}/empty.ome.zarr -m {model} " + OUT,
        "is a folder but not a Zarr store",
        "zarr_holes",
    ),
    Case(
        "zarr-all-chunks-missing",
        "predict {w}/no-chunks.ome.zarr -m {model} " + OUT,
        "has none of its 2 chunks in the store: Zarr reads it as the fill value 0.0 everywhere",
        "zarr_holes",
    ),
    # ---- predict: channel, voxel size, tiling, precision, device -------------------------------
    Case("no-channel-of-two", "predict {good} -m {model} " + OUT, "2 channels.*--channel"),
    Case(
        "wrong-channel-name",
        "predict {good} --channel DIC -m {model} " + OUT,
        "no channel named 'DIC'",
    ),
    Case("wrong-channel-index", "predict {good} --channel 5 -m {model} " + OUT, "no channel 5"),
    Case(
        "negative-channel-index", "predict {good} --channel -3 -m {model} " + OUT, "no channel -3"
    ),
    Case("voxel-nan", P + " --voxel-size nan,0.3,0.3 " + OUT, "three positive numbers"),
    Case("voxel-inf", P + " --voxel-size inf,0.3,0.3 " + OUT, "three positive numbers"),
    Case("voxel-negative", P + " --voxel-size=-1,0.3,0.3 " + OUT, "three positive numbers"),
    Case("voxel-two-values", P + " --voxel-size 0.3,0.3 " + OUT, "three positive numbers"),
    Case("voxel-tiny", P + " --voxel-size 1e-9,1e-9,1e-9 " + OUT, "--force"),
    Case("voxel-huge", P + " --voxel-size 100,100,100 " + OUT, "--force"),
    Case("voxel-one-axis-absurd", P + " --voxel-size 29,0.29,0.29 " + OUT, "--force"),
    Case("tile-zero", P + " --tile 0,64,64 " + OUT, "three positive numbers"),
    Case("tile-words", P + " --tile a,b,c " + OUT, "three positive numbers"),
    Case("overlap-above-one", P + " --overlap 1.5 " + OUT, "overlap"),
    Case("overlap-negative", P + " --overlap -0.2 " + OUT, "overlap"),
    Case("overlap-nan", P + " --overlap nan " + OUT, "overlap"),
    Case("overlap-word", P + " --overlap lots " + OUT, "invalid float"),
    Case("precision-unknown", P + " --precision fp8 " + OUT, "invalid choice"),
    Case("device-unknown", P + " --device tpu " + OUT, "device"),
    Case("device-missing-gpu", P + " --device cuda:7 " + OUT, "cuda|gpu|device"),
    # ---- predict: models -----------------------------------------------------------------------
    Case(
        "model-unknown-name",
        "predict {good} --channel 1 -m nosuchmodel " + OUT,
        "no model folder or known model named 'nosuchmodel'",
    ),
    Case(
        "model-empty-folder",
        "predict {good} --channel 1 -m {w}/empty-folder " + OUT,
        "is not a model",
        "broken_models",
    ),
    Case(
        "model-config-not-json",
        "predict {good} --channel 1 -m {w}/not-json " + OUT,
        r"not-json.*not valid JSON",
        "broken_models",
    ),
    Case(
        "model-config-a-list",
        "predict {good} --channel 1 -m {w}/list " + OUT,
        r"/list: config.json holds a list",
        "broken_models",
    ),
    Case(
        "model-schema-abc",
        "predict {good} --channel 1 -m {w}/schema-abc " + OUT,
        "schema-abc.*schema_version",
        "broken_models",
    ),
    Case(
        "model-wrong-type",
        "predict {good} --channel 1 -m {w}/wrong-type " + OUT,
        "wrong-type.*whole number",
        "broken_models",
    ),
    Case(
        "model-unknown-architecture-key",
        "predict {good} --channel 1 -m {w}/unknown-architecture-key " + OUT,
        "unknown-architecture-key.*unknown architecture setting.*'dropout'",
        "broken_models",
    ),
    Case(
        "model-binary-config",
        "predict {good} --channel 1 -m {w}/binary-config " + OUT,
        "cannot read the model config",
        "broken_models",
    ),
    Case(
        "model-no-weights",
        "predict {good} --channel 1 -m {w}/no-weights " + OUT,
        "is not a model",
        "broken_models",
    ),
    Case(
        "model-garbage-weights",
        "predict {good} --channel 1 -m {w}/garbage-weights " + OUT,
        "cannot read the weights",
        "broken_models",
    ),
    Case(
        "model-weights-misfit",
        "predict {good} --channel 1 -m {w}/weights-misfit " + OUT,
        "do not fit",
        "broken_models",
    ),
    Case(
        "model-nan-weights",
        "predict {good} --channel 1 -m {w}/nan-weights " + OUT,
        "NaN|not finite|Inf",
        "broken_models",
    ),
    Case(
        "model-broken-by-name",
        "predict {good} --channel 1 -m zoo-not-json " + OUT,
        "'zoo-not-json'.*is broken.*not valid JSON",
    ),
    Case(
        "model-list-by-name",
        "predict {good} --channel 1 -m zoo-list " + OUT,
        "is broken.*holds a list",
    ),
    Case(
        "model-hidden-temp-by-name",
        "predict {good} --channel 1 -m .zoo-temp.host-123.abc.tmp " + OUT,
        "no model folder or known model",
    ),
    # ---- predict: outputs ----------------------------------------------------------------------
    Case("output-exists", P + " " + OUT, "already exists.*--overwrite", "existing_outputs"),
    Case(
        "output-under-a-file",
        P + " -o {w}/afile/out.ome.tif",
        "folder path is a file",
        "existing_outputs",
    ),
    Case(
        "output-is-input",
        "predict {w}/copy.ome.tif --channel 1 -m {model} -o {w}/copy.ome.tif",
        "already exists",
        "existing_outputs",
    ),
    Case(
        "several-inputs-to-existing-file",
        "predict {w}/copy.ome.tif {w}/second.ome.tif --channel 1 -m {model} -o {w}/afile",
        "must be a folder",
        "existing_outputs",
    ),
    Case(
        "several-inputs-to-a-tif-name",
        "predict {w}/copy.ome.tif {w}/second.ome.tif --channel 1 -m {model} -o {w}/both.ome.tif",
        "folder",
        "existing_outputs",
    ),
    Case(
        "several-inputs-same-name",
        "predict {w}/copy.ome.tif {w}/sub/copy.ome.tif --channel 1 -m {model} -o {w}/preds",
        "same file name",
        "existing_outputs",
    ),
    Case(
        "overwrite-a-folder-that-is-not-a-store",
        P + " -o {w}/folder.ome.zarr --overwrite",
        "folder.ome.zarr is a folder but not a Zarr store; --overwrite replaces only a store",
        "existing_outputs",
    ),
    Case(
        "partial-store-is-a-file",
        P + " -o {w}/in-the-way.ome.zarr",
        "in-the-way.ome.zarr.partial is in the way",
        "existing_outputs",
    ),
    Case(
        "resume-partial-store-is-a-file",
        P + " -o {w}/in-the-way.ome.zarr --resume",
        "in-the-way.ome.zarr.partial is in the way",
        "existing_outputs",
    ),
    Case("missing-model-flag", "predict {good} " + OUT, "required"),
    Case(
        "scheduler-not-an-address",
        P + " --scheduler notanaddress -o {w}/out.ome.zarr",
        "expected a Dask scheduler address tcp://HOST:PORT",
    ),
    Case(
        "scheduler-port-99999",
        P + " --scheduler tcp://127.0.0.1:99999 -o {w}/out.ome.zarr",
        "port 1-65535.*99999",
    ),
    Case(
        "scheduler-unknown-scheme",
        P + " --scheduler http://127.0.0.1:8787 -o {w}/out.ome.zarr",
        "expected a Dask scheduler address",
    ),
    # ---- models and discovery ------------------------------------------------------------------
    Case(
        "export-not-a-model",
        "export {w}/empty-folder -o {w}/m.zip",
        "is not a model",
        "broken_models",
    ),
    Case("export-broken-config", "export {w}/list -o {w}/m.zip", "holds a list", "broken_models"),
    Case(
        "export-output-exists",
        "export {model} -o {w}/taken.zip",
        "already exists",
        "existing_outputs",
    ),
    Case(
        "import-pickle-needing-code",
        "import {w}/evil/model.p -o {w}/imported",
        "without running code",
        "code_pickles",
    ),
    Case(
        "import-zip-not-a-package",
        "import {w}/notpkg.zip -o {w}/imported",
        "not a bioimage.io model package",
        "code_pickles",
    ),
    Case("import-fake-zip", "import {w}/fake.zip -o {w}/imported", "zip|package", "code_pickles"),
    Case(
        "import-rdf-not-yaml",
        "import {w}/not-yaml.zip -o {w}/imported",
        "rdf.yaml is not valid YAML \\(line 3\\)",
        "bad_packages",
    ),
    Case(
        "import-rdf-python-tag",
        "import {w}/python-tag.zip -o {w}/imported",
        "tag that is not plain data.*python/object/apply.*nothing in it was run",
        "bad_packages",
    ),
    Case(
        "import-weights-outside-package",
        "import {w}/weights-outside.zip -o {w}/imported",
        "points weights.pytorch_state_dict.source outside the package \\(../../outside.pt\\)",
        "bad_packages",
    ),
    Case(
        "import-weights-absolute-path",
        "import {w}/weights-absolute.zip -o {w}/imported",
        "outside the package",
        "bad_packages",
    ),
    Case(
        "import-weights-web-address",
        "import {w}/weights-url.zip -o {w}/imported",
        "outside the package",
        "bad_packages",
    ),
    Case(
        "import-weights-missing",
        "import {w}/weights-missing.zip -o {w}/imported",
        "lacks the file weights.pt that its rdf.yaml names",
        "bad_packages",
    ),
    Case(
        "import-fnet-model-text",
        "import {w}/fnet-text -o {w}/imported",
        "model.p is not a readable torch file",
        "bad_fnet_models",
    ),
    Case(
        "import-fnet-nn-state-list",
        "import {w}/fnet-list -o {w}/imported",
        "'nn_state' is a list, not the network's weights",
        "bad_fnet_models",
    ),
    Case(
        "import-fnet-model-folder",
        "import {w}/fnet-folder -o {w}/imported",
        "model.p is a folder, not a pytorch_fnet model file",
        "bad_fnet_models",
    ),
    Case(
        "import-missing",
        "import {w}/nothing.zip -o {w}/imported",
        "does not exist|not found|no such",
    ),
    Case(
        "import-into-existing",
        "import {w}/taken.zip -o {w}/existing-model",
        "not a zip|already exists",
        "existing_outputs",
    ),
    # ---- init-model ----------------------------------------------------------------------------
    Case("init-depth-50", "init-model {w}/deep --structure dna --depth 50", "depth must be 0 to 6"),
    Case("init-width-100000", "init-model {w}/wide --structure dna --width 100000", "parameters"),
    Case("init-depth-negative", "init-model {w}/neg --structure dna --depth -1", "depth"),
    Case("init-width-zero", "init-model {w}/zero --structure dna --width 0", "width"),
    Case(
        "init-existing-folder",
        "init-model {w}/existing-model --structure dna --depth 1 --width 2",
        "already exists",
        "existing_outputs",
    ),
    Case(
        "init-under-a-file",
        "init-model {w}/afile/m --structure dna --depth 1 --width 2",
        "folder path is a file",
        "existing_outputs",
    ),
    Case(
        "init-voxel-nan",
        "init-model {w}/m --structure dna --voxel-size nan,1,1",
        "three positive numbers",
    ),
    # ---- train: plain bad arguments, refused by the parser --------------------------------------
    Case("train-iterations-zero", "train {good} -o {w}/m --iterations 0", "--iterations.*'0'"),
    Case("train-batch-size-negative", "train {good} -o {w}/m --batch-size -3", "--batch-size"),
    Case("train-lr-nan", "train {good} -o {w}/m --lr nan", "--lr: expected a positive number"),
    Case("train-gpus-zero", "train {good} -o {w}/m --gpus 0", "--gpus"),
    # ---- synth ---------------------------------------------------------------------------------
    Case("synth-shape-zero", "synth {w}/s.ome.tif --shape 0,16,16", "three positive numbers"),
    Case("synth-shape-words", "synth {w}/s.ome.tif --shape x,y,z", "three positive numbers"),
    Case("synth-shape-two", "synth {w}/s.ome.tif --shape 16,16", "three positive numbers"),
    Case(
        "synth-shape-huge",
        "synth {w}/s.ome.tif --shape 100000,100000,100000",
        "memory|too large|voxels",
    ),
    Case("synth-timepoints-zero", "synth {w}/s.ome.tif --timepoints 0 --shape 8,16,16", "time"),
    Case(
        "synth-unknown-structure",
        "synth {w}/s.ome.tif --structures dna,unobtainium --shape 8,16,16",
        "unobtainium",
    ),
    Case(
        "synth-existing-output",
        "synth {w}/out.ome.tif --shape 8,16,16",
        "already exists",
        "existing_outputs",
    ),
    Case(
        "synth-under-a-file",
        "synth {w}/afile/s.ome.tif --shape 8,16,16",
        "folder path is a file",
        "existing_outputs",
    ),
    # ---- evaluate ------------------------------------------------------------------------------
    Case(
        "evaluate-missing-target-channel",
        "evaluate {model} {good} --signal-channel bright-field",
        "target channel.*no channel named 'dna'",
    ),
    Case(
        "evaluate-mismatched-shapes",
        "evaluate {model} {w}/mismatch.csv",
        "differ in shape",
        "pair_data",
    ),
    Case(
        "evaluate-table-without-columns", "evaluate {model} {w}/nocols.csv", "columns", "pair_data"
    ),
    Case(
        "train-one-plane-target-for-a-3d-network",
        "train {w}/proj.csv -o {w}/m --structure dna --init none --iterations 2",
        "the target is one plane.*--kind 2.5d --target-projection max",
        "pair_data",
    ),
    Case(
        "train-scene-counts-differ",
        "train {w}/scenes.csv -o {w}/m --structure dna --init none --iterations 2",
        "holds 2 scene\\(s\\) and target proj.ome.tif 1",
        "pair_data",
    ),
    Case(
        "predict-unknown-scene",
        "predict {w}/wells.ome.tif -m {model} --scene 'Position 9' " + OUT,
        "has no scene 'Position 9'; its scenes are 0: Position 1, 1: Position 2",
        "pair_data",
    ),
    Case(
        "predict-every-scene-into-one-file",
        "predict {w}/wells.ome.tif -m {model} --scene all " + OUT,
        "with several scenes, -o must be a folder; out.ome.tif is named like a file",
        "pair_data",
    ),
    Case("evaluate-no-data", "evaluate {model}", "data file"),
    Case(
        "evaluate-output-exists",
        "evaluate {model} {good} --signal-channel 1 --target-channel 0 -o {w}/taken.csv",
        "already exists",
        "existing_outputs",
    ),
    Case(
        "evaluate-plot-exists",
        "evaluate {model} {good} --signal-channel 1 --target-channel 0 --plot {w}/taken.png",
        "already exists",
        "existing_outputs",
    ),
    Case(
        "evaluate-broken-model",
        "evaluate {w}/not-json {good} --signal-channel 1 --target-channel 0",
        "not valid JSON",
        "broken_models",
    ),
    # ---- the command line itself ---------------------------------------------------------------
    Case("unknown-command", "predictt {good}", "invalid choice"),
    Case("no-command", "", "required"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_ends_in_one_line_and_nothing_written(case, work, assets, capsys, monkeypatch):
    if case.setup in MONKEY_SETUPS:
        MONKEY_SETUPS[case.setup](work, assets, monkeypatch)
    elif case.setup:
        SETUPS[case.setup](work, assets)
    argv = shlex.split(
        case.args.format(
            w=work, good=assets.good, plain=assets.plain, model=assets.model, zoo=assets.zoo
        )
    )
    before = snapshot(work, assets.root)
    result = run_cli(argv, capsys)
    assert "Traceback" not in result.err + result.out
    assert result.code == case.code, result.err
    line = message_line(result.err)
    assert line.startswith("labelfree") or line.startswith("usage:"), line
    assert "error" in line or "interrupted" in line, line
    assert re.search(case.match, line, re.IGNORECASE), line
    assert snapshot(work, assets.root) == before, "a file changed or appeared"


def test_the_catalogue_is_large_and_every_case_distinct():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)
    assert len({c.args + str(c.setup) for c in CASES}) == len(CASES)
