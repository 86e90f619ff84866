"""Export a bundle as a bioimage.io model package (spec 0.5) that ``bioimageio.spec`` validates.

The package holds: the YAML; weights as a pytorch_state_dict (``weights.pt``, with this
package's network source ``unet.py`` and its ``unet3d`` kwargs) and as torchscript; test input
and output tensors (.npy) computed by those weights; a cover image; a README; the paper as
citation. Axes batch, channel, z, y, x with the model's voxel size in um; zero-mean-unit-variance
preprocessing over the whole image, as prediction here z-scores.
"""

from __future__ import annotations

import io
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import ModelSpec
from ..errors import LabelFreeError
from ..files import (
    atomic_file,
    check_output_location,
    make_parent,
    native_write_errors,
    temp_dir_beside,
    write_error,
)
from .bioimageio import (
    ARCH_CALLABLE,
    ARCH_FILE,
    CONFIG_KEY,
    EPS,
    LICENSE,
    PAPER,
    PAPER_DOI,
    bioimageio_spec,
)
from .safe_load import sha256

if TYPE_CHECKING:
    from ..bundle import ModelBundle


def _zmuv(x: np.ndarray) -> np.ndarray:
    """bioimage.io's zero_mean_unit_variance over all axes, as a consumer will apply it."""
    x = x.astype(np.float64)
    return ((x - x.mean()) / (x.std() + EPS)).astype(np.float32)


def _test_input(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A smooth raw-intensity volume (like a camera's), BCZYX float32: the test input."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    v = gaussian_filter(rng.normal(size=shape), sigma=(1.0, 2.0, 2.0))
    v = 1000.0 + 200.0 * v / v.std()
    return v.astype(np.float32)[None, None]


def _cover(path: Path, test_in: np.ndarray, test_out: np.ndarray) -> None:
    """Input | prediction, middle z-slice, 2:1 (bioimage.io wants 1:1 to 2:1 covers)."""
    from matplotlib.image import imsave

    def scaled(a: np.ndarray) -> np.ndarray:
        a = a[0, 0, a.shape[2] // 2] if a.ndim == 5 else a[0, 0]
        lo, hi = np.percentile(a, (1, 99))
        return np.clip((a - lo) / max(hi - lo, 1e-12), 0, 1)

    imsave(path, np.concatenate([scaled(test_in), scaled(test_out)], axis=1), cmap="gray")


def _readable(provenance: dict) -> dict:
    """Provenance for people: without the training images' pixel fingerprints (up to a thousand
    digests each, for the trust checks; core.trust.seen), the starting model's included."""
    shown = {k: v for k, v in provenance.items() if k != "training_pixels"}
    if isinstance(shown.get("init"), dict):
        shown["init"] = {k: v for k, v in shown["init"].items() if k != "training_pixels"}
    return shown


def _readme(spec: ModelSpec, name: str) -> str:
    flat = spec.kind == "unet2d"  # a 2D package: axes b, c, y, x
    axes = "y, x" if flat else "z, y, x"
    vox = ", ".join(f"{v:g}" for v in spec.voxel_size_um[1 if flat else 0 :])
    lines = [
        f"# {spec.display_name or spec.structure}: label-free prediction",
        "",
        f"Predicts the fluorescence of **{spec.structure}**"
        + (f" ({spec.target})" if spec.target else "")
        + f" from a {spec.modality} {'image' if flat else 'z-stack'}, with the "
        f"{'2D' if flat else '3D'} U-Net of Ounkomol et al. (2018): depth "
        f"{spec.architecture.depth}, {spec.architecture.width} channels at the top level.",
        "",
        "## Input",
        f"- one channel, axes batch, channel, {axes}; pixel size **{vox} um** ({axes.upper()}): "
        "resample images to it first (the network learned structures at that scale);",
        "- z-scored over the whole image (zero mean, unit variance: the package's preprocessing);",
        f"- {axes.upper()} multiples of {spec.architecture.multiple}.",
        "",
        "## Output",
        "The predicted fluorescence, z-scored units, same axes and voxel size as the input.",
        "",
        "## Weights",
        f"`pytorch_state_dict` (architecture: `{ARCH_FILE}`, `{ARCH_CALLABLE}`) and `torchscript`. "
        f"Made with napari-labelfree, which reads this package back (`labelfree import {name}`).",
        "",
    ]
    if spec.provenance:
        lines += ["## Provenance", ""]
        lines += [f"- {k}: {v}" for k, v in _readable(spec.provenance).items()] + [""]
    if spec.metrics:
        lines += ["## Scores", ""] + [f"- {k}: {v}" for k, v in spec.metrics.items()] + [""]
    lines += [
        "## Validation",
        "",
        "The test tensors were computed by these weights; napari-labelfree reproduces the "
        "predictions of the original model from this package exactly (float32).",
        "",
        "## Citation",
        "",
        PAPER,
        f"https://doi.org/{PAPER_DOI}",
        "",
    ]
    return "\n".join(lines)


# the package's author when none is given: bioimage.io requires one, and a made-up name would
# be credited as if it were a person
UNKNOWN_AUTHOR = "unknown (no author given at export)"


def export_package(
    bundle: ModelBundle,
    output: str | Path,
    overwrite: bool = False,
    authors: Sequence[str] = (),
) -> Path:
    """Write ``bundle`` as a bioimage.io model package (zip) at ``output``; returns its path.

    ``authors`` are the names bioimage.io credits; none gives :data:`UNKNOWN_AUTHOR`.
    """
    import torch

    from ..weights import load_network

    if bundle.spec.ensemble:
        # the format describes one network; the mean of K as one would need code of ours run by
        # every consumer, and the members' spread (the point of an ensemble) has no place in it
        raise LabelFreeError(
            f"{bundle.name} is an ensemble of {bundle.spec.ensemble_size} networks; a bioimage.io "
            "package holds one network: export a model trained without an ensemble"
        )
    output = Path(output)
    if output.suffix.lower() != ".zip":
        raise LabelFreeError(f"a bioimage.io package is a .zip file; got {output.name}")
    if output.exists() and not overwrite:
        raise LabelFreeError(
            f"{output} already exists; choose a new name (nothing was overwritten)"
        )
    check_output_location(output)  # before the network is loaded and traced
    authors = [a.strip() for a in authors]
    bad = [a for a in authors if not a or "/" in a or "\\" in a]
    if bad:
        raise LabelFreeError(
            f"author {bad[0]!r} is not a name bioimage.io accepts: give a non-empty name "
            "without / or \\ (for example 'Ada Lovelace')"
        )
    bioimageio_spec()  # a clear message when the optional package is missing
    spec = bundle.spec
    if spec.normalization.scope != "per-image":
        raise LabelFreeError(
            f"{bundle.name} z-scores with the statistics of the middle "
            f"{spec.normalization.center_slices} z-slices, which bioimage.io's preprocessing "
            "cannot express; only models z-scored over the whole image can be exported"
        )
    if spec.kind == "unet2.5d":
        raise LabelFreeError(
            f"{bundle.name} is a 2.5D model (a window of planes in, one plane out); bioimage.io "
            "export takes 3D and 2D models"
        )
    if spec.target_projection:  # its network gives every plane; the plane is their projection
        raise LabelFreeError(
            f"{bundle.name} predicts one plane, the {spec.target_projection} over z of its "
            "network's planes, which a bioimage.io package cannot describe; bioimage.io export "
            "takes models that predict every plane"
        )
    net = load_network(bundle)
    m = spec.architecture.multiple
    test_in = _test_input((2 * m, 4 * m, 4 * m))
    if spec.kind == "unet2d":  # b, c, y, x: one plane
        test_in = np.ascontiguousarray(test_in[:, :, m])
    with torch.no_grad():
        test_out = net(torch.from_numpy(_zmuv(test_in))).numpy()
    if not float(test_out.max()) > 0.0:
        # the spec bounds the reproduction tolerance by 1% of the largest test output value
        raise LabelFreeError(
            f"{bundle.name} predicts no positive value on the test image (is it trained?); a "
            "bioimage.io package needs test output with positive values to be valid"
        )
    make_parent(output)
    # the package's files are made beside it, on its disk: a full TMPDIR elsewhere cannot fail
    # the export, and a full disk here is said once, as the output's
    tmp = temp_dir_beside(output)
    try:
        with native_write_errors(tmp):
            files = _write_files(tmp, bundle, net, test_in, test_out)
        descr = _describe(spec, bundle.name, files, output.name, authors)
        with atomic_file(output) as part:
            _save(descr, part)
    except OSError as e:
        raise write_error(output, e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return output


def _write_files(tmp: Path, bundle, net, test_in, test_out) -> dict[str, Path]:
    import torch

    from .. import unet

    files = {
        "arch": tmp / ARCH_FILE,
        "weights": tmp / "weights.pt",
        "torchscript": tmp / "weights_torchscript.pt",
        "test_in": tmp / "test_input.npy",
        "test_out": tmp / "test_output.npy",
        "cover": tmp / "cover.png",
        "readme": tmp / "README.md",
    }
    shutil.copyfile(unet.__file__, files["arch"])
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    # torch's file writer aborts the process (C++ terminate) on a full disk: it writes to memory,
    # Python writes the bytes (a full disk is then an OSError, said in one line)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    files["weights"].write_bytes(buffer.getvalue())
    # traced, not scripted: the recursion's depth is fixed, so the trace is the whole network
    # torch deprecates TorchScript, but bioimage.io consumers (e.g. deepImageJ) still run it
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(net, torch.from_numpy(_zmuv(test_in)))
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    files["torchscript"].write_bytes(buffer.getvalue())
    np.save(files["test_in"], test_in)
    np.save(files["test_out"], test_out)
    _cover(files["cover"], test_in, test_out)
    files["readme"].write_text(_readme(bundle.spec, files["readme"].name), encoding="utf-8")
    return files


def _describe(
    spec: ModelSpec, name: str, files: dict[str, Path], zip_name: str, authors: Sequence[str] = ()
):
    from bioimageio.spec.model import v0_5 as bm

    z, y, x = spec.voxel_size_um
    m = spec.architecture.multiple
    a = spec.architecture
    flat = spec.kind == "unet2d"  # b, c, y, x

    def space_in(axis: str, scale: float):
        return bm.SpaceInputAxis(
            id=bm.AxisId(axis),
            size=bm.ParameterizedSize(min=m, step=m),
            scale=scale,
            unit="micrometer",
        )

    def space_out(axis: str, scale: float):
        size = bm.SizeReference(tensor_id=bm.TensorId("input"), axis_id=bm.AxisId(axis))
        return bm.SpaceOutputAxis(id=bm.AxisId(axis), size=size, scale=scale, unit="micrometer")

    inputs = bm.InputTensorDescr(
        id=bm.TensorId("input"),
        description=f"{spec.modality} image at {y:g} x {x:g} um pixels"
        if flat
        else f"{spec.modality} z-stack at {z:g} x {y:g} x {x:g} um voxels",
        axes=[
            bm.BatchAxis(),
            bm.ChannelAxis(channel_names=[bm.Identifier(spec.modality.replace("-", "_"))]),
            *([] if flat else [space_in("z", z)]),
            space_in("y", y),
            space_in("x", x),
        ],
        test_tensor=bm.FileDescr(source=files["test_in"]),
        preprocessing=[
            bm.ZeroMeanUnitVarianceDescr(
                kwargs=bm.ZeroMeanUnitVarianceKwargs(
                    axes=[bm.AxisId(n) for n in ("channel", "z", "y", "x") if n != "z" or not flat],
                    eps=EPS,
                )
            )
        ],
    )
    outputs = bm.OutputTensorDescr(
        id=bm.TensorId("prediction"),
        description=f"predicted {spec.structure} fluorescence (z-scored units)",
        axes=[
            bm.BatchAxis(),
            bm.ChannelAxis(channel_names=[bm.Identifier(_identifier(spec.structure))]),
            *([] if flat else [space_out("z", z)]),
            space_out("y", y),
            space_out("x", x),
        ],
        test_tensor=bm.FileDescr(source=files["test_out"]),
    )
    kwargs = {
        "depth": a.depth,
        "width": a.width,
        "in_channels": a.in_channels,
        "out_channels": a.out_channels,
    }
    if flat:
        kwargs["name"] = a.name  # the same callable builds the 2D network
    import torch

    weights = bm.WeightsDescr(
        pytorch_state_dict=bm.PytorchStateDictWeightsDescr(
            source=files["weights"],
            architecture=bm.ArchitectureFromFileDescr(
                source=files["arch"],
                sha256=sha256(files["arch"]),
                callable=bm.Identifier(ARCH_CALLABLE),
                kwargs=kwargs,
            ),
            pytorch_version=bm.Version(torch.__version__.split("+")[0]),
        ),
        torchscript=bm.TorchscriptWeightsDescr(
            source=files["torchscript"],
            pytorch_version=bm.Version(torch.__version__.split("+")[0]),
            parent="pytorch_state_dict",
        ),
    )
    return bm.ModelDescr(
        name=_title(spec),
        description=f"Label-free prediction of {spec.structure} fluorescence from "
        f"{spec.modality} {'images (2D' if flat else 'z-stacks (3D'} U-Net, Ounkomol et al. 2018), "
        "made with napari-labelfree",
        authors=[bm.Author(name=a) for a in authors] or [bm.Author(name=UNKNOWN_AUTHOR)],
        cite=[bm.CiteEntry(text=PAPER, doi=bm.Doi(PAPER_DOI))],
        license=bm.LicenseId(LICENSE),
        documentation=bm.FileDescr(source=files["readme"]),
        covers=[bm.FileDescr(source=files["cover"])],
        tags=[
            "2d" if flat else "3d",
            "unet",
            "label-free",
            "fluorescence",
            "pytorch",
            spec.modality,
        ],
        inputs=[inputs],
        outputs=[outputs],
        weights=weights,
        config={
            "bioimageio": {"reproducibility_tolerance": [_tolerance(files["test_out"])]},
            CONFIG_KEY: {"spec": spec.to_dict(), "bundle": name, "package": zip_name},
        },
    )


def _tolerance(test_out: Path) -> dict[str, Any]:
    """Reproduction tolerance: 1e-3 absolute (CPU vs GPU, fp32), kept below the spec's limit of
    1% of the largest output (an untrained network's outputs are tiny)."""
    peak = float(np.load(test_out).max())  # the spec compares with the maximum, not max |x|
    return {
        "absolute_tolerance": min(1e-3, 0.005 * peak),
        "relative_tolerance": 1e-3,
        "mismatched_elements_per_million": 100,
    }


def _identifier(text: str) -> str:
    out = "".join(c if c.isalnum() else "_" for c in text).strip("_")
    return out if out and not out[0].isdigit() else f"s_{out}"


def _title(spec: ModelSpec) -> str:
    return f"label-free {spec.display_name or spec.structure}"[:128]


def _save(descr, path: Path) -> None:
    from bioimageio.spec import save_bioimageio_package

    path.unlink(missing_ok=True)  # the atomic temp file: the packager writes a new one
    save_bioimageio_package(descr, output_path=path)
