"""A file's acquisition metadata (OME ContrastMethod / IlluminationType, CZI's) names its
transmitted-light channel: the reader shows it as the input, prediction takes it by default."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import tifffile

from napari_labelfree.cli import main
from napari_labelfree.core.io import open_image
from napari_labelfree.core.io.acquisition import FLUORESCENCE, TRANSMITTED, channel_acquisition

VOXEL = (0.29, 0.108, 0.108)


def _ome_tiff(path, names, channel_attributes, rng):
    """A CZYX OME-TIFF whose Channel elements carry ``channel_attributes`` (name -> list); OME-XML
    in a file named ``.tif`` too (tifffile writes OME only to an ``.ome.tif`` name), which bioio
    reads instead of the plain OME-TIFF path."""
    data = rng.integers(100, 4000, size=(len(names), 6, 40, 44)).astype(np.uint16)
    meta = {
        "axes": "CZYX",
        "Channel": {"Name": list(names), **channel_attributes},
        "PhysicalSizeZ": VOXEL[0],
        "PhysicalSizeY": VOXEL[1],
        "PhysicalSizeX": VOXEL[2],
    }
    written = path.with_name(path.name.removesuffix(".ome.tif").removesuffix(".tif") + ".ome.tif")
    tifffile.imwrite(written, data, metadata=meta)
    return written.rename(path)


# a Zeiss confocal's transmitted-light detector and a dye: no name rule tells which is which
CONFOCAL = {
    "ContrastMethod": ["Fluorescence", "Brightfield"],
    "IlluminationType": ["Epifluorescence", "Transmitted"],
}


@pytest.mark.parametrize("name", ["cells.ome.tif", "cells.tif"])  # tifffile's path and bioio's
def test_the_file_says_which_channel_is_transmitted_light(tmp_path, rng, name):
    path = _ome_tiff(tmp_path / name, ["AF488", "T PMT"], CONFOCAL, rng)
    with open_image(path) as src:
        assert src.channel_light == (FLUORESCENCE, TRANSMITTED)
        assert src.declared(TRANSMITTED) == 1


def test_the_reader_shows_the_declared_channel_as_the_input(tmp_path, rng):
    """Without the metadata a named channel the table does not know ("T PMT") is taken for a dye;
    with it, "T PMT" is the grey, opaque input layer and "AF488" a coloured overlay."""
    from napari_labelfree._reader import source_layers

    with open_image(_ome_tiff(tmp_path / "c.ome.tif", ["AF488", "T PMT"], CONFOCAL, rng)) as src:
        layers = {k["metadata"]["labelfree"]["channel"]: k for _, k, _ in source_layers(src)}
    assert layers["T PMT"]["metadata"]["labelfree"]["transmitted"] is True
    assert layers["T PMT"]["blending"] == "opaque"
    assert layers["AF488"]["metadata"]["labelfree"]["transmitted"] is False
    with open_image(_ome_tiff(tmp_path / "plain.ome.tif", ["AF488", "T PMT"], {}, rng)) as src:
        assert src.channel_light == ()
        plain = {k["metadata"]["labelfree"]["channel"]: k for _, k, _ in source_layers(src)}
    assert plain["T PMT"]["metadata"]["labelfree"]["transmitted"] is False


def test_predict_takes_the_declared_channel_and_says_so(tmp_path, rng, make_tiny_model, capsys):
    path = _ome_tiff(tmp_path / "c.ome.tif", ["AF488", "T PMT"], CONFOCAL, rng)
    model = make_tiny_model(structure="dna")
    out = tmp_path / "p.ome.tif"
    args = ["predict", str(path), "-m", str(model.path), "-o", str(out), "--device", "cpu"]
    assert main(args) == 0
    assert "channel 1 (T PMT)" in capsys.readouterr().err
    with open_image(out) as pred:
        assert pred.shape_tczyx[1] == 1
    # the same file without the metadata: which channel is refused in one line, nothing written
    plain = _ome_tiff(tmp_path / "plain.ome.tif", ["AF488", "T PMT"], {}, rng)
    out2 = tmp_path / "p2.ome.tif"
    assert main(["predict", str(plain), "-m", str(model.path), "-o", str(out2)]) != 0
    err = capsys.readouterr().err
    assert "choose the transmitted-light one" in err and "Traceback" not in err
    assert not out2.exists()


def test_a_channel_the_file_calls_fluorescence_is_refused_unless_confirmed(
    tmp_path, rng, make_tiny_model, capsys
):
    path = _ome_tiff(tmp_path / "c.ome.tif", ["AF488", "T PMT"], CONFOCAL, rng)
    model = make_tiny_model(structure="dna")
    out = tmp_path / "p.ome.tif"
    args = ["predict", str(path), "--channel", "AF488", "-m", str(model.path), "-o", str(out)]
    assert main([*args, "--device", "cpu"]) != 0
    err = capsys.readouterr().err
    assert "is fluorescence" in err and "(1: T PMT)" in err and "--force" in err
    assert "Traceback" not in err and not out.exists()
    assert main([*args, "--device", "cpu", "--force"]) == 0
    assert out.exists()


def test_two_declared_transmitted_channels_leave_the_choice_to_the_user(tmp_path, rng):
    both = {"ContrastMethod": ["DIC", "Phase"]}
    with open_image(_ome_tiff(tmp_path / "two.ome.tif", ["a", "b"], both, rng)) as src:
        assert src.channel_light == (TRANSMITTED, TRANSMITTED)
        assert src.declared(TRANSMITTED) is None


def _czi_metadata(channels):
    """A CZI metadata tree as Zen writes it (bioio's CZI reader hands it over parsed)."""
    root = ET.Element("ImageDocument")
    node = root
    for tag in ("Metadata", "Information", "Image", "Dimensions", "Channels"):
        node = ET.SubElement(node, tag)
    for i, fields in enumerate(channels):
        ch = ET.SubElement(node, "Channel", Id=f"Channel:{i}", Name=f"ch{i}")
        for tag, text in fields.items():
            ET.SubElement(ch, tag).text = text
    return root


def test_zeiss_czi_metadata_is_read_alike():
    tree = _czi_metadata(
        [
            {"IlluminationType": "Transmitted", "ContrastMethod": "Brightfield"},
            {"IlluminationType": "Epifluorescence", "ContrastMethod": "Fluorescence"},
            {"IlluminationType": "Transmitted"},  # no contrast method: the illumination decides
        ]
    )
    said = channel_acquisition(tree, 3)
    assert said.light == (TRANSMITTED, FLUORESCENCE, TRANSMITTED)
    assert said.modality == ("bright-field", "fluorescence", None)
    assert channel_acquisition(ET.tostring(tree, encoding="unicode"), 3) == said


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        "",
        "not xml at all",
        "<OME><Image><Pixels><Channel ContrastMethod='Brightfield'/></Pixels></Image>",  # cut off
        {"omero": {"channels": []}},  # OME-Zarr's attributes: no acquisition metadata
        _czi_metadata([{"ContrastMethod": "Darkfield"}, {"ContrastMethod": "Other"}]),
    ],
)
def test_missing_damaged_or_silent_metadata_says_nothing(metadata):
    """No channel is called transmitted light or fluorescence (dark-field is neither: it is named,
    but not an input of these models), and nothing raises."""
    said = channel_acquisition(metadata, 2)
    assert said.light == ()
    assert said.modality in ((), ("dark-field", None))


def test_metadata_of_another_number_of_channels_is_not_matched():
    """Three channels described for a two-channel image: none is matched to the wrong one."""
    tree = _czi_metadata([{"ContrastMethod": "Brightfield"}] * 3)
    assert channel_acquisition(tree, 2) == ((), ())


def test_a_czi_is_read_through_its_own_metadata(tmp_path, rng, write_czi, monkeypatch):
    """bioio's CZI reader hands over Zen's metadata tree; libCZI's writer (which the test files
    come from) cannot write the channels' light, so the tree the reader returns is Zen's shape."""
    czi_reader = pytest.importorskip("bioio_czi.reader")
    data = rng.integers(100, 4000, size=(1, 2, 6, 40, 44)).astype(np.uint16)
    path = write_czi(tmp_path / "cells.czi", data, ["ESID", "ChS1"], VOXEL)
    with open_image(path) as src:
        assert src.channel_light == ()  # what libCZI wrote: names only
    zen = _czi_metadata([{"ContrastMethod": "DIC"}, {"IlluminationType": "Epifluorescence"}])
    monkeypatch.setattr(czi_reader.Reader, "metadata", property(lambda self: zen))
    with open_image(path) as src:
        assert src.channel_light == (TRANSMITTED, FLUORESCENCE)
        assert src.declared(TRANSMITTED) == 0


def test_training_pairs_from_one_file_take_the_declared_signal_and_target(tmp_path, rng):
    """One file holding both (the transmitted light and its stain, as a microscope saves them):
    no channel columns needed when the metadata names the only channel of each kind."""
    from napari_labelfree.core.data import PairSpec, load_pairs

    path = _ome_tiff(tmp_path / "pair.ome.tif", ["AF488", "T PMT"], CONFOCAL, rng)
    pairs, _ = load_pairs([PairSpec(path, path, None, None)])
    with open_image(path) as src:
        np.testing.assert_array_equal(pairs[0].signal, src.frame(0, 1))
        np.testing.assert_array_equal(pairs[0].target, src.frame(0, 0))


def _pair_file(path, rng, contrast):
    """A registered pair in one OME-TIFF: transmitted light of ``contrast`` and its DNA stain."""
    attributes = {"ContrastMethod": [contrast, "Fluorescence"]}
    return _ome_tiff(path, ["TL", "Hoechst"], attributes, rng)


def test_a_model_remembers_its_images_contrast_and_warns_on_another(tmp_path, rng, capsys):
    """Trained from scratch on files that say phase contrast: the card says so, and an image
    whose file says DIC is warned about by name (exact, where the pixel statistics are not);
    one whose file says phase contrast is not."""
    from napari_labelfree.core.bundle import read_spec
    from napari_labelfree.core.model_card import card_lines

    pair = _pair_file(tmp_path / "phase.ome.tif", rng, "Phase")
    model = tmp_path / "mine"
    small = ["--iterations", "2", "--batch-size", "1", "--patch-shape", "4,16,16"]
    small += ["--depth", "2", "--width", "4", "--init", "none", "--device", "cpu"]
    small += ["--structure", "dna"]
    assert main(["train", str(pair), "-o", str(model), *small]) == 0
    spec = read_spec(model)
    assert spec.provenance["input_modalities"] == {"phase-contrast": 1}
    assert spec.modality == "phase-contrast"  # "predicts dna from phase-contrast", not the default
    assert any("1 phase-contrast" in line for line in card_lines(spec))
    capsys.readouterr()
    for contrast, warned in (("DIC", True), ("Phase", False)):
        image = _pair_file(tmp_path / f"{contrast}.ome.tif", rng, contrast)
        out = tmp_path / f"{contrast}-pred.ome.tif"
        assert main(["predict", str(image), "-m", str(model), "-o", str(out)]) == 0
        err = capsys.readouterr().err
        assert ("this image is dic" in err and "phase-contrast images only" in err) is warned


def test_the_validation_strip_keeps_what_the_file_said():
    from napari_labelfree.core.data import ImagePair
    from napari_labelfree.core.train.holdout import hold_out_strips

    a = np.zeros((4, 32, 256), np.float32)
    train, val, _ = hold_out_strips([ImagePair(a, a, None, "x", "dic")], 0.25, 16, 1.0)
    assert [p.modality for p in train + val] == ["dic", "dic"]


def test_a_layer_keeps_its_files_contrast_for_prediction_and_training(tmp_path, rng):
    """The plugin's reader stores the contrast method a file names with each channel's layer;
    the widgets' sources and training pairs carry it from there."""
    layers = pytest.importorskip("napari.layers")
    from napari_labelfree._reader import source_layers
    from napari_labelfree._widgets._layers import layer_info, layer_source
    from napari_labelfree._widgets._train_job import pairs_from_layers

    with open_image(_pair_file(tmp_path / "pair.ome.tif", rng, "DIC")) as src:
        data = source_layers(src)
    made = {k["metadata"]["labelfree"]["channel"]: layers.Image(d, **k) for d, k, _ in data}
    tl, stain = made["TL"], made["Hoechst"]
    assert tl.metadata["labelfree"]["modality"] == "dic"
    assert layer_source(tl, layer_info(tl)).channel_modality == ("dic",)
    sources = [(layer_source(ly, layer_info(ly)), VOXEL, ly.name) for ly in (tl, stain)]
    assert [p.modality for p in pairs_from_layers(*sources)] == ["dic"]


@pytest.mark.parametrize("modality", ["bright-field", "dic", "phase-contrast"])
def test_simulated_files_say_what_they_are(tmp_path, modality):
    """`labelfree synth` writes each channel's contrast method, as a microscope's file does, so a
    model trained on them records it; a channel without one leaves them all unwritten."""
    from napari_labelfree.core.io import write_ome_tiff

    out = tmp_path / "s.ome.tif"
    argv = ["synth", str(out), "--shape", "8,48,48", "--structures", "dna", "--modality", modality]
    assert main(argv) == 0
    with open_image(out) as src:
        assert src.channel_modality == (modality, "fluorescence")
        assert src.channel_light == (TRANSMITTED, FLUORESCENCE)
    data = np.zeros((1, 2, 2, 8, 8), np.float32)
    partial = write_ome_tiff(tmp_path / "p.ome.tif", data, channel_modalities=["dic", None])
    with open_image(partial) as src:
        assert src.channel_modality == () and src.channel_light == ()


def test_what_a_model_saw_includes_its_start_and_the_simulator():
    """A built-in saw the simulator's three modalities; a model fine-tuned from a start saw the
    start's images too; anything not known leaves the model unjudged."""
    from napari_labelfree.core.bundle import resolve_model
    from napari_labelfree.core.config import ModelSpec
    from napari_labelfree.core.trust.ood import seen_modalities

    assert seen_modalities(resolve_model("dna").spec) == {"bright-field", "phase-contrast", "dic"}
    own = {"input_modalities": {"dic": 2}}
    assert seen_modalities(ModelSpec("dna", provenance=own)) == {"dic"}
    tuned = {**own, "init": {"model": "x", "input_modalities": ["phase-contrast"]}}
    assert seen_modalities(ModelSpec("dna", provenance=tuned)) == {"dic", "phase-contrast"}
    for unknown in (
        {"input_modalities": {"dic": 1, "not recorded": 1}},
        {**own, "init": {"model": "x", "input_modalities": ["not recorded"]}},
        {**own, "init": {"model": "imported"}},
        {},
    ):
        assert seen_modalities(ModelSpec("dna", provenance=unknown)) is None


def test_fine_tuning_records_what_its_start_saw(make_tiny_model):
    from napari_labelfree.core.config import ModelSpec
    from napari_labelfree.core.train.init import spec_from_init

    start = make_tiny_model(structure="dna")
    start.spec.provenance["input_modalities"] = {"phase-contrast": 3}
    tuned = spec_from_init(ModelSpec("dna"), start)
    assert tuned.provenance["init"]["input_modalities"] == ["phase-contrast"]
    start.spec.provenance.pop("input_modalities")
    assert spec_from_init(ModelSpec("dna"), start).provenance["init"]["input_modalities"] == [
        "not recorded"
    ]
