"""`labelfree predict` into OME-Zarr: frame by frame, resume, overwrite, Ctrl-C, and on a cluster."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from napari_labelfree.cli import main
from napari_labelfree.core.config import TilingConfig
from napari_labelfree.core.events import FrameDone
from napari_labelfree.core.io import OmeZarrOutput, open_image, write_ome_tiff
from napari_labelfree.core.io.ome_zarr_out import partial_path, read_done_frames
from napari_labelfree.core.predict.plan import plan_prediction

VOX = (0.29, 0.29, 0.29)
N_T = 4
TILE = (8, 16, 16)


@pytest.fixture
def case(tmp_path, make_tiny_model):
    data = np.random.default_rng(11).normal(size=(N_T, 2, 10, 20, 18)).astype(np.float32)
    path = write_ome_tiff(
        tmp_path / "movie.ome.tif", data, channel_names=["gfp", "bright"], physical_sizes=VOX
    )
    models = [make_tiny_model("dna", "blue"), make_tiny_model("lamin-b1", "magenta", seed=1)]
    return path, models


def _args(case, out, *extra):
    path, models = case
    args = ["predict", str(path), "-o", str(out), "--channel", "bright", "--device", "cpu"]
    for m in models:
        args += ["-m", str(m.path)]
    return [*args, "--tile", ",".join(map(str, TILE)), "--precision", "fp32", *extra]


def _reference(case, threads=None):
    """The single-process fp32 prediction, frame by frame ({name: ZYX} per frame)."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        path, models = case
        tiling = TilingConfig(tile_shape=TILE, precision="fp32")
        plan = plan_prediction(open_image(path), models, "bright", None, tiling, "cpu")
        return [e.arrays for e in plan.iter_frames() if isinstance(e, FrameDone)]
    finally:
        torch.set_num_threads(before)


def _assert_store(store, reference, skip=()):
    src = open_image(store)
    assert src.channel_names == ["dna", "lamin-b1"]
    assert src.physical_sizes == pytest.approx(VOX)
    for t, frame in enumerate(reference):
        if t not in skip:
            for c, name in enumerate(src.channel_names):
                np.testing.assert_array_equal(src.frame(t, c), frame[name])
    return src


def test_predict_writes_an_ome_zarr_with_names_colours_and_scale(case, tmp_path):
    out = tmp_path / "result.ome.zarr"
    assert main(_args(case, out)) == 0
    _assert_store(out, _reference(case))
    attrs = json.loads((out / ".zattrs").read_text())
    assert [ch["color"] for ch in attrs["omero"]["channels"]] == ["2659FF", "FF00FF"]
    assert attrs["labelfree"]["complete"] is True
    assert not partial_path(out).exists()


def test_an_existing_store_is_kept_unless_overwrite(case, tmp_path, capsys):
    out = tmp_path / "result.ome.zarr"
    out.mkdir()
    (out / ".zgroup").write_text('{"zarr_format": 2}')
    (out / "keep").touch()
    assert main(_args(case, out)) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "keep").exists()
    assert main(_args(case, out, "--overwrite")) == 0
    assert not (out / "keep").exists()
    _assert_store(out, _reference(case))


def test_overwrite_never_replaces_a_folder_that_is_not_a_store(case, tmp_path, capsys):
    """A folder merely named x.ome.zarr holds the user's files: --overwrite must not delete it."""
    out = tmp_path / "result.ome.zarr"
    out.mkdir()
    (out / "thesis.docx").write_text("three years of work")
    assert main(_args(case, out, "--overwrite")) == 2
    assert "not a Zarr store" in capsys.readouterr().err
    assert (out / "thesis.docx").read_text() == "three years of work"
    assert not partial_path(out).exists()


def test_a_second_run_into_the_same_store_is_refused_while_the_first_writes(
    case, tmp_path, monkeypatch, capsys
):
    """Two predictions into one .ome.zarr: the second neither deletes nor joins the first's."""
    out = tmp_path / "result.ome.zarr"
    write = OmeZarrOutput.write_frame
    results = []

    def second_run_meanwhile(self, t, arrays):
        write(self, t, arrays)
        if t == 0:
            monkeypatch.setattr(OmeZarrOutput, "write_frame", write)
            results.append(main(_args(case, out)))
            results.append(main(_args(case, out, "--resume")))
            results.append(capsys.readouterr().err)

    monkeypatch.setattr(OmeZarrOutput, "write_frame", second_run_meanwhile)
    assert main(_args(case, out)) == 0
    assert results[:2] == [2, 2]
    assert results[2].count("another labelfree run is writing result.ome.zarr") == 2
    _assert_store(out, _reference(case))
    assert not partial_path(out).exists()
    assert not (out / ".labelfree-lock").exists()


def test_ctrl_c_leaves_an_incomplete_partial_store_that_resume_finishes(
    case, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "result.ome.zarr"
    write = OmeZarrOutput.write_frame
    calls = []

    def write_then_stop(self, t, arrays):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(t)
        write(self, t, arrays)

    monkeypatch.setattr(OmeZarrOutput, "write_frame", write_then_stop)
    assert main(_args(case, out)) == 130
    err = capsys.readouterr().err
    assert "2 of 4 frames" in err and "--resume" in err
    assert not out.exists()  # never a half store at the target
    partial = partial_path(out)
    assert read_done_frames(partial) == {0, 1}
    assert json.loads((partial / ".zattrs").read_text())["labelfree"]["complete"] is False

    # the resumed run predicts only frames 2 and 3: frame 0's pixels, set to 7 here, stay 7
    import zarr

    zarr.open_array(str(partial / "0"), mode="r+", zarr_format=2)[0] = 7.0
    monkeypatch.setattr(OmeZarrOutput, "write_frame", write)
    assert main(_args(case, out, "--resume")) == 0
    reference = _reference(case)
    src = _assert_store(out, reference, skip=(0,))
    assert (src.frame(0, 0) == 7.0).all()


def test_resume_predicts_again_a_done_frame_whose_chunk_was_deleted(
    case, tmp_path, monkeypatch, capsys
):
    """A done-marker says the frame was written; its chunk gone since, it would read as zeros."""
    out = tmp_path / "result.ome.zarr"
    write = OmeZarrOutput.write_frame

    def write_then_stop(self, t, arrays):
        if t == 2:
            raise KeyboardInterrupt
        write(self, t, arrays)

    monkeypatch.setattr(OmeZarrOutput, "write_frame", write_then_stop)
    assert main(_args(case, out)) == 130
    partial = partial_path(out)
    assert read_done_frames(partial) == {0, 1}
    (partial / "0" / "1" / "1" / "0" / "0" / "0").unlink()  # frame 1, channel 1
    monkeypatch.setattr(OmeZarrOutput, "write_frame", write)
    capsys.readouterr()
    assert main(_args(case, out, "--resume")) == 0
    assert "1 of 4 frames already done" in capsys.readouterr().out
    _assert_store(out, _reference(case))


def test_several_inputs_into_a_folder_of_stores(case, tmp_path):
    path, _ = case
    second = tmp_path / "other.ome.tif"
    second.write_bytes(path.read_bytes())
    args = _args(case, tmp_path / "out", "--format", "ome-zarr")
    args.insert(2, str(second))
    assert main(args) == 0
    reference = _reference(case)
    for name in ("movie", "other"):
        _assert_store(tmp_path / "out" / f"{name}_predicted.ome.zarr", reference)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "2"], "needs OME-Zarr output"),
        (["--resume"], "needs OME-Zarr output"),
        (["--block", "4,8,8"], "--block cuts frames"),
        (["--format", "ome-zarr"], "is an OME-TIFF name"),
    ],
)
def test_flags_that_cannot_work_are_refused_in_one_line(case, tmp_path, capsys, extra, message):
    assert main(_args(case, tmp_path / "result.ome.tif", *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "result.ome.tif").exists()


def test_two_local_workers_write_exactly_the_single_process_output(case, tmp_path, caplog):
    pytest.importorskip("distributed")
    out = tmp_path / "result.ome.zarr"
    assert main(_args(case, out, "--workers", "2")) == 0
    # the local cluster's normal close is not narrated as if it failed
    assert not [r for r in caplog.records if "Lost all workers" in r.getMessage()]
    # each worker runs torch with its share of the cores; the reference does the same
    _assert_store(out, _reference(case, threads=max(1, (os.cpu_count() or 1) // 2)))
