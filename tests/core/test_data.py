"""Reading training pairs: files holding both channels, CSV data tables, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from napari_labelfree.core.data import expand, load_pairs, read_table, split_validation
from napari_labelfree.core.errors import LabelFreeError
from napari_labelfree.core.io import write_ome_tiff

VOX = (0.29, 0.2, 0.2)


def write(path, n_channels=2, shape=(6, 16, 16), names=("bright-field", "dna"), t=1, seed=0):
    data = np.random.default_rng(seed).random((t, n_channels, *shape)).astype(np.float32)
    write_ome_tiff(path, data, channel_names=list(names)[:n_channels], physical_sizes=VOX)
    return data


def test_file_with_both_channels_by_name_and_index(tmp_path):
    data = write(tmp_path / "a.ome.tif", t=2)
    pairs, notes = load_pairs(expand([tmp_path / "a.ome.tif"], "bright-field", "1"))
    assert len(pairs) == 2 and not notes  # one pair per time point
    np.testing.assert_allclose(pairs[1].signal, data[1, 0])
    np.testing.assert_allclose(pairs[1].target, data[1, 1])
    assert pairs[0].voxel_size == pytest.approx(VOX)


def test_csv_table_with_separate_files_and_channel_columns(tmp_path):
    sig = write(tmp_path / "s.ome.tif", 1, names=("bf",))
    tgt = write(tmp_path / "t.ome.tif", 2, names=("x", "Hoechst"), seed=1)
    (tmp_path / "sub").mkdir()
    table = tmp_path / "sub" / "data.csv"
    table.write_text("signal,target,target_channel\n../s.ome.tif,../t.ome.tif,Hoechst\n")
    rows = read_table(table)
    assert rows[0].signal == (tmp_path / "s.ome.tif").resolve()  # relative to the table's folder
    pairs, _ = load_pairs(expand([table], None, None))
    np.testing.assert_allclose(pairs[0].signal, sig[0, 0])
    np.testing.assert_allclose(pairs[0].target, tgt[0, 1])


def test_shape_mismatch_is_a_clear_error(tmp_path):
    write(tmp_path / "s.ome.tif", 1, shape=(6, 16, 16))
    write(tmp_path / "t.ome.tif", 1, shape=(6, 16, 12))
    table = tmp_path / "d.csv"
    table.write_text("signal,target\ns.ome.tif,t.ome.tif\n")
    with pytest.raises(LabelFreeError, match="differ in shape"):
        load_pairs(expand([table], None, None))
    # a target of one plane (a projection of the stack) pairs; one of another plane count not
    write(tmp_path / "p.ome.tif", 1, shape=(1, 16, 16))
    write(tmp_path / "t4.ome.tif", 1, shape=(4, 16, 16))
    table.write_text("signal,target\ns.ome.tif,p.ome.tif\n")
    (pair,), _ = load_pairs(expand([table], None, None))
    assert pair.signal.shape == (6, 16, 16) and pair.target.shape == (1, 16, 16)
    table.write_text("signal,target\ns.ome.tif,t4.ome.tif\n")
    with pytest.raises(LabelFreeError, match="the target may be one plane"):
        load_pairs(expand([table], None, None))


def test_missing_channel_is_a_clear_error(tmp_path):
    write(tmp_path / "a.ome.tif")
    with pytest.raises(LabelFreeError, match="target channel: .*no channel named 'tom20'"):
        load_pairs(expand([tmp_path / "a.ome.tif"], "bright-field", "tom20"))
    with pytest.raises(LabelFreeError, match="choose the signal channel by name or index"):
        load_pairs(expand([tmp_path / "a.ome.tif"], None, None))
    bad = tmp_path / "bad.csv"
    bad.write_text("input,output\na,b\n")
    with pytest.raises(LabelFreeError, match="columns 'signal' and 'target'"):
        read_table(bad)


def test_split_validation():
    pairs = list(range(10))
    train, val = split_validation(pairs, 0.2, seed=0)
    assert len(val) == 2 and len(train) == 8 and not set(train) & set(val)
    with pytest.raises(LabelFreeError):
        split_validation([1], 0.5)
