import numpy as np
import pytest
import tifffile

from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.io import check_3d, open_image, resolve_voxel_size, write_ome_tiff


def _write_5d(path, data, names, sizes):
    tifffile.imwrite(
        path,
        data,
        ome=True,
        photometric="minisblack",
        metadata={
            "axes": "TCZYX",
            "Channel": {"Name": names},
            "PhysicalSizeZ": sizes[0],
            "PhysicalSizeY": sizes[1],
            "PhysicalSizeX": sizes[2],
        },
    )


def test_reads_5d_ome_tiff_written_by_tifffile(tmp_path, rng):
    data = rng.integers(0, 4000, size=(2, 3, 5, 24, 20)).astype(np.uint16)
    _write_5d(tmp_path / "a.ome.tif", data, ["DNA", "Bright", "GFP"], (0.5, 0.108, 0.108))
    src = open_image(tmp_path / "a.ome.tif")
    assert src.shape_tczyx == (2, 3, 5, 24, 20)
    assert src.channel_names == ["DNA", "Bright", "GFP"]
    assert src.physical_sizes == pytest.approx((0.5, 0.108, 0.108))
    c = src.channel_index("bright")
    np.testing.assert_array_equal(src.frame(1, c), data[1, 1].astype(np.float32))
    assert src.channel_index(2) == 2 and src.channel_index("-1") == 2


def test_reads_czi_with_channel_names_and_sizes(tmp_path, rng, write_czi):
    data = rng.integers(0, 4000, size=(2, 2, 5, 40, 48)).astype(np.uint16)
    write_czi(tmp_path / "cells.czi", data, ["Bright", "DNA"], (0.29, 0.108, 0.108))
    src = open_image(tmp_path / "cells.czi")
    assert src.shape_tczyx == (2, 2, 5, 40, 48)
    assert src.channel_names == ["Bright", "DNA"]
    np.testing.assert_allclose(src.physical_sizes, (0.29, 0.108, 0.108))
    np.testing.assert_array_equal(src.frame(1, src.channel_index("DNA")), data[1, 1])


def test_plain_tiff_without_sizes(tmp_path, rng):
    data = rng.integers(0, 255, size=(6, 16, 16)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "plain.tif", data)
    src = open_image(tmp_path / "plain.tif")
    assert src.shape_zyx == (6, 16, 16)
    vox, warning = resolve_voxel_size(src, None, (0.29, 0.29, 0.29))
    assert vox == (0.29, 0.29, 0.29) and "assuming" in warning
    vox, warning = resolve_voxel_size(src, (1, 0.2, 0.2), (0.29, 0.29, 0.29))
    assert vox == (1.0, 0.2, 0.2) and warning is None


def test_write_round_trip_and_streaming(tmp_path, rng):
    data = rng.normal(size=(2, 2, 3, 8, 9)).astype(np.float32)
    out = write_ome_tiff(
        tmp_path / "o.ome.tif", iter(data), data.shape, ["dna", "tom20"], (0.3, 0.1, 0.1)
    )
    src = open_image(out)
    assert src.shape_tczyx == data.shape and src.channel_names == ["dna", "tom20"]
    assert src.physical_sizes == pytest.approx((0.3, 0.1, 0.1))
    np.testing.assert_array_equal(src.frame(1, 1), data[1, 1])


def test_writer_never_overwrites_and_leaves_no_partial_file(tmp_path, rng):
    target = tmp_path / "o.ome.tif"
    target.write_bytes(b"precious")
    with pytest.raises(LabelFreeError, match="already exists"):
        write_ome_tiff(target, np.zeros((1, 1, 2, 4, 4), np.float32))
    assert target.read_bytes() == b"precious"

    def failing():
        yield np.zeros((1, 2, 4, 4), np.float32)
        raise RuntimeError("prediction failed")

    with pytest.raises(RuntimeError):
        write_ome_tiff(tmp_path / "new.ome.tif", failing(), (2, 1, 2, 4, 4))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.ome.tif"]


def test_user_errors(tmp_path, rng):
    with pytest.raises(LabelFreeError, match="does not exist"):
        open_image(tmp_path / "missing.czi")
    (tmp_path / "junk.tif").write_bytes(b"this is not a tiff")
    with pytest.raises(LabelFreeError, match="cannot read"):
        open_image(tmp_path / "junk.tif")
    tifffile.imwrite(tmp_path / "flat.tif", rng.integers(0, 9, size=(16, 16)).astype(np.uint8))
    with pytest.raises(LabelFreeError, match="2D"):
        check_3d(open_image(tmp_path / "flat.tif"))
    data = rng.integers(0, 9, size=(1, 2, 3, 8, 8)).astype(np.uint16)
    _write_5d(tmp_path / "two.ome.tif", data, ["a", "b"], (1, 1, 1))
    src = open_image(tmp_path / "two.ome.tif")
    with pytest.raises(LabelFreeError, match="no channel 5"):
        src.channel_index(5)


def test_a_missing_bioio_is_one_clear_error(tmp_path, rng, monkeypatch):
    """bioio is a dependency (the aicsimageio fallback is gone): a broken install says so."""
    import sys

    data = rng.integers(0, 4000, size=(1, 2, 4, 12, 10)).astype(np.uint16)
    _write_5d(tmp_path / "a.ome.tif", data, ["DNA", "Bright"], (0.4, 0.1, 0.1))
    # a file the tifffile fast path declines (see core/ome_tiff.py), so bioio would read it
    monkeypatch.setattr("napari_labelfree.core.io.read.read_ome_tiff_header", lambda *_: None)
    monkeypatch.setitem(sys.modules, "bioio", None)  # `import bioio` now raises ImportError
    with pytest.raises(LabelFreeError, match="needs bioio, which is not installed: reinstall"):
        open_image(tmp_path / "a.ome.tif")


def _bioio_source(path, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr("napari_labelfree.core.io.read.read_ome_tiff_header", lambda *_: None)
        return open_image(path)


def test_plain_ome_tiff_is_read_by_tifffile_as_bioio_reads_it(tmp_path, rng, monkeypatch):
    # planes stored Z-major (ZTCYX) and the z size in nm: order and units must be honoured
    data = rng.integers(0, 4000, size=(2, 3, 5, 24, 20)).astype(np.uint16)  # TCZYX
    path = tmp_path / "ztc.ome.tif"
    tifffile.imwrite(
        path,
        np.moveaxis(data, 2, 0).copy(),
        ome=True,
        photometric="minisblack",
        metadata={
            "axes": "ZTCYX",
            "Channel": {"Name": ["Bright", "DNA", "GFP"]},
            "PhysicalSizeZ": 290,
            "PhysicalSizeZUnit": "nm",
            "PhysicalSizeY": 0.108,
            "PhysicalSizeX": 0.108,
        },
    )
    fast, slow = open_image(path), _bioio_source(path, monkeypatch)
    assert (fast.backend, slow.backend) == ("tifffile", "bioio")
    assert fast.shape_tczyx == slow.shape_tczyx == (2, 3, 5, 24, 20)
    assert fast.channel_names == slow.channel_names == ["Bright", "DNA", "GFP"]
    assert fast.physical_sizes == pytest.approx((0.29, 0.108, 0.108))  # 290 nm in um
    for t in range(2):
        for c in range(3):
            np.testing.assert_array_equal(fast.frame(t, c), data[t, c])
            np.testing.assert_array_equal(fast.frame(t, c), slow.frame(t, c))


def test_an_rgb_z_stack_is_refused_not_cut_to_red(tmp_path, rng):
    rgb = rng.integers(0, 255, size=(4, 16, 16, 3)).astype(np.uint8)
    tifffile.imwrite(
        tmp_path / "rgb.ome.tif", rgb, ome=True, photometric="rgb", metadata={"axes": "ZYXS"}
    )
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    for name in ("rgb.ome.tif", "rgb.tif"):
        with pytest.raises(LabelFreeError, match="colour \\(RGB\\) images, 3 samples"):
            open_image(tmp_path / name)


def test_what_the_tifffile_path_does_not_know_goes_to_bioio(tmp_path, rng):
    plain = rng.integers(0, 4000, size=(6, 16, 16)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "plain.tif", plain, photometric="minisblack")
    src = open_image(tmp_path / "plain.tif")
    assert src.backend == "bioio"
    np.testing.assert_array_equal(src.frame(0, 0), plain)


def test_a_missing_z_size_keeps_the_known_xy_sizes(tmp_path, rng):
    data = rng.integers(0, 4000, size=(6, 16, 16)).astype(np.uint16)
    tifffile.imwrite(
        tmp_path / "xy.ome.tif",
        data,
        ome=True,
        photometric="minisblack",
        metadata={"axes": "ZYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1},
    )
    src = open_image(tmp_path / "xy.ome.tif")
    vox, warning = resolve_voxel_size(src, None, (0.29, 0.29, 0.29))
    assert vox == pytest.approx((0.29, 0.1, 0.1))
    assert "no physical size for Z" in warning and "Give the voxel size" in warning


def _count_tiff_opens(monkeypatch):
    opened = []
    real = tifffile.TiffFile

    def counting(*args, **kwargs):
        opened.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(tifffile, "TiffFile", counting)
    return opened


@pytest.mark.parametrize("kind", ["ome", "imagej"])
def test_frames_of_a_long_tiff_come_from_one_open_file(tmp_path, rng, monkeypatch, kind):
    # the OME fast path and bioio's TIFF path alike: opened and indexed once, not per frame
    data = rng.integers(0, 4000, size=(12, 2, 3, 8, 6)).astype(np.uint16)  # TCZYX
    if kind == "ome":
        path = tmp_path / "long.ome.tif"
        _write_5d(path, data, ["a", "b"], (0.3, 0.1, 0.1))
    else:
        path = tmp_path / "long.tif"  # an ImageJ hyperstack: bioio reads its header
        tifffile.imwrite(path, np.moveaxis(data, 1, 2), imagej=True, metadata={"axes": "TZCYX"})
    opened = _count_tiff_opens(monkeypatch)
    with open_image(path) as src:
        assert src.backend == ("tifffile" if kind == "ome" else "bioio")
        before = len(opened)
        for t in (11, 0, 5):
            for c in (1, 0):
                np.testing.assert_array_equal(src.frame(t, c), data[t, c])
        assert len(opened) == before  # no frame opened the file again
    # closed: the next frame opens it once more and reads the same pixels
    np.testing.assert_array_equal(src.frame(7, 1), data[7, 1])
    assert len(opened) == before + 1
    src.close()


def test_bioio_tiff_frames_equal_bioio_own_reading(tmp_path, rng):
    from bioio import BioImage

    plain = rng.integers(0, 4000, size=(3, 6, 16, 16)).astype(np.uint16)  # bioio: CZYX
    tifffile.imwrite(tmp_path / "plain.tif", plain, photometric="minisblack")
    src, ref = open_image(tmp_path / "plain.tif"), BioImage(tmp_path / "plain.tif")
    assert src.shape_tczyx == tuple(ref.dims.shape)
    for c in range(src.n_channels):
        np.testing.assert_array_equal(src.frame(0, c), ref.get_image_data("ZYX", T=0, C=c))


def test_in_memory_sources_close_harmlessly():
    from napari_labelfree.core.io import from_array

    with from_array(np.ones((3, 4, 4), np.float32), "ZYX") as src:
        assert src.frame(0, 0).shape == (3, 4, 4)
