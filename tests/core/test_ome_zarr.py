"""OME-Zarr in and out: NGFF metadata, frame-by-frame writing, interruption and resume."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from napari_labelfree._reader import get_reader
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.io import open_image, open_prediction_output
from napari_labelfree.core.io.ome_zarr_out import frame_chunks, partial_path

NAMES = ["dna", "lamin-b1"]
COLOURS = ["blue", "#ff00ff"]
VOX = (0.29, 0.108, 0.108)
ZYX = (5, 12, 10)


@pytest.fixture
def frames():
    return np.random.default_rng(3).normal(size=(4, 2, *ZYX)).astype(np.float32)


def _open(path, **kw):
    return open_prediction_output(path, NAMES, COLOURS, ZYX, VOX, 4, **kw)


def _write(out, frames, ts):
    for t in ts:
        out.write_frame(t, {n: frames[t, c] for c, n in enumerate(NAMES)})


def test_store_carries_axes_scale_channel_labels_and_colours(tmp_path, frames):
    path = tmp_path / "result.ome.zarr"
    out = _open(path)
    _write(out, frames, range(4))
    assert out.commit() == path
    attrs = json.loads((path / ".zattrs").read_text())
    ms = attrs["multiscales"][0]
    assert ms["version"] == "0.4"
    assert [a["name"] for a in ms["axes"]] == ["t", "c", "z", "y", "x"]
    assert [a.get("unit") for a in ms["axes"][2:]] == ["micrometer"] * 3
    scale = ms["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == pytest.approx([1.0, 1.0, *VOX])
    channels = attrs["omero"]["channels"]
    assert [ch["label"] for ch in channels] == NAMES
    assert [ch["color"] for ch in channels] == ["2659FF", "FF00FF"]
    assert attrs["labelfree"]["complete"] is True
    chunks = json.loads((path / "0" / ".zarray").read_text())["chunks"]
    assert chunks[:2] == [1, 1] and np.prod(chunks) <= np.prod(ZYX)  # at most one frame
    # read back through the same path as any input: names, scale and every voxel
    src = open_image(path)
    assert src.shape_tczyx == (4, 2, *ZYX)
    assert src.channel_names == NAMES
    assert src.physical_sizes == pytest.approx(VOX)
    for t in range(4):
        for c in range(2):
            np.testing.assert_array_equal(src.frame(t, c), frames[t, c])


def test_napari_reader_opens_the_store_folder_with_names_and_scale(tmp_path, frames):
    path = tmp_path / "result.ome.zarr"
    out = _open(path)
    _write(out, frames, range(4))
    out.commit()
    for given in (str(path), str(path) + "/"):
        reader = get_reader(given)
        assert callable(reader)
        layers = reader(given)
        assert [kw["name"] for _, kw, _ in layers] == [f"result: {n}" for n in NAMES]
        np.testing.assert_allclose(layers[1][1]["scale"], (1.0, *VOX))
        np.testing.assert_array_equal(np.asarray(layers[1][0]), frames[:, 1])
    assert get_reader(str(tmp_path / "missing.ome.zarr")) is None


def test_an_interrupted_run_leaves_no_store_and_resume_writes_only_missing_frames(tmp_path, frames):
    path = tmp_path / "result.ome.zarr"
    out = _open(path)
    _write(out, frames, [0, 2])
    with pytest.raises(LabelFreeError, match="frames 1, 3 are not written"):
        out.commit()
    del out  # the run stops here
    assert not path.exists() and partial_path(path).is_dir()

    resumed = _open(path, resume=True)
    assert resumed.done_frames == {0, 2} and resumed.missing_frames == [1, 3]
    _write(resumed, frames, resumed.missing_frames)
    resumed.commit()
    assert not partial_path(path).exists()
    src = open_image(path)
    for t in range(4):
        np.testing.assert_array_equal(src.frame(t, 0), frames[t, 0])
    # resuming a finished store: nothing left to do, nothing rewritten
    again = _open(path, resume=True)
    assert again.missing_frames == [] and again.commit() == path


def test_a_leftover_partial_store_is_started_again_without_resume(tmp_path, frames):
    path = tmp_path / "result.ome.zarr"
    _write(_open(path), frames, [0, 1])
    out = _open(path)
    assert out.done_frames == set() and out.missing_frames == [0, 1, 2, 3]


def test_resume_refuses_a_partial_store_of_other_models(tmp_path, frames):
    path = tmp_path / "result.ome.zarr"
    _write(_open(path), frames, [0])
    with pytest.raises(LabelFreeError, match="other models or another image"):
        open_prediction_output(path, ["dna", "tom20"], COLOURS, ZYX, VOX, 4, resume=True)


def test_nothing_is_overwritten_unless_asked_and_then_only_at_commit(tmp_path, frames):
    path = tmp_path / "result.ome.zarr"
    path.mkdir()
    (path / ".zgroup").write_text('{"zarr_format": 2}')  # an earlier store
    (path / "keep.txt").write_text("earlier result")
    with pytest.raises(LabelFreeError, match="already exists"):
        _open(path)
    out = _open(path, overwrite=True)
    _write(out, frames, range(3))
    assert (path / "keep.txt").exists()  # still there while the new store is incomplete
    _write(out, frames, [3])
    out.commit()
    assert not (path / "keep.txt").exists()
    assert open_image(path).channel_names == NAMES


def test_the_output_travels_to_other_processes_and_checks_frames(tmp_path, frames):
    path = tmp_path / "result.ome.zarr"
    out = _open(path)
    copy = pickle.loads(pickle.dumps(out))  # what a distributed worker receives
    _write(copy, frames, [1])
    assert out.refresh() == {1}
    with pytest.raises(ValueError, match="outputs"):
        out.write_frame(0, {"dna": frames[0, 0]})
    with pytest.raises(ValueError, match="shape"):
        out.write_frame(0, {n: frames[0, 0, :2] for n in NAMES})


def test_chunks_never_exceed_one_frame_and_stay_small():
    assert frame_chunks((64, 512, 512)) == (1, 1, 64, 512, 512)
    big = frame_chunks((256, 2048, 2048))
    assert big[2] < 256 and big[2] * big[3] * big[4] * 4 <= 64 << 20
