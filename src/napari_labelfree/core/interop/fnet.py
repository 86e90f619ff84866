"""pytorch_fnet models (the paper's software) as napari-labelfree bundles.

A pytorch_fnet model folder holds ``model.p`` (a ``torch.save`` of a plain dict) and
``train_options.json``. Two layouts exist: release_1, the Nature Methods 2018 code (keys
``nn_module``, ``nn_kwargs``, ``nn_state``, ...) and master / fnet 0.2 (``fnet_model_kwargs`` with
``nn_class`` and ``nn_kwargs``, ``nn_state``, ...). Both networks are ``fnet_nn_3d_params.Net``
(``fnet_nn_3d.Net`` is it at depth 4, 32 channels), layer for layer this package's
:class:`~napari_labelfree.core.unet.UNet3D`: conv3x3x3 (with bias) - BN - ReLU pairs, a 2x2x2
stride-2 conv (with bias) - BN - ReLU down, a 2x2x2 transposed conv - BN - ReLU up, the skip
concatenated first, then the up-sampled features, a 3x3x3 conv head. Import only renames the
state dict's entries; no number changes. ``fnet_nn_2d.Net`` is the same network in 2D
(Conv2d, BatchNorm2d): it becomes a "unet2d" bundle, each 3x3 (2x2) kernel a 1x3x3 (1x2x2) one.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Architecture, ModelSpec, Normalization
from ..errors import LabelFreeError
from ..structures import colormap_for
from .safe_load import check_state_dict, sha256, torch_load_data

if TYPE_CHECKING:
    from ..bundle import ModelBundle

# The paper's data: 0.29 um z-steps, 0.108 um pixels (Ounkomol et al. 2018, Methods).
PAPER_DATA_VOXEL_SIZE_UM: tuple[float, float, float] = (0.29, 0.108, 0.108)
MODEL_FILE = "model.p"
OPTIONS_FILE = "train_options.json"

_NETWORKS = {  # pytorch_fnet network name -> (depth, mult_chan) it fixes, or None for any
    "fnet_nn_3d": (4, 32),
    "fnet_nn_3d_params": None,
    # fnet_nn_2d.Net fixes depth 4, 32 channels; its sizes are read off the weights all the same
    "fnet_nn_2d": None,
}
# pytorch_fnet's per-level module names -> UNet3D's (core/unet.py)
_LEVEL_NAMES = {
    "sub_2conv_more": "encode",
    "sub_2conv_less": "decode",
    "conv_down": "down",
    "bn0": "down_bn",
    "convt": "up",
    "bn1": "up_bn",
}
# transforms of the signal that change nothing the network sees
_NO_OPS = {"do_nothing", "ToFloat"}


class NeedsDataVoxelSize(LabelFreeError):
    """The model does not say at what voxel size its training images were: the caller must."""


@dataclass
class FnetModel:
    """What a pytorch_fnet model file and its train_options.json say, in this package's terms."""

    path: Path  # the model.p
    format: str  # "release_1" or "master"
    network: str  # "fnet_nn_3d" or "fnet_nn_3d_params"
    architecture: Architecture
    state_dict: dict[str, Any]  # UNet3D names -> tensors
    normalization: Normalization
    resize_factors: tuple[float, float, float] | None  # Resizer's zoom (Z, Y, X), if any
    transforms: list[str] = field(default_factory=list)
    count_iter: int | None = None


def find_model_file(path: str | Path) -> Path:
    """The model.p of a pytorch_fnet model folder (or the file itself)."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / MODEL_FILE
    if p.is_dir():
        raise LabelFreeError(f"{p} is a folder, not a pytorch_fnet model file")
    if not p.is_file():
        raise LabelFreeError(
            f"{p} does not exist; give a pytorch_fnet model folder (with {MODEL_FILE} and "
            f"{OPTIONS_FILE}) or its {MODEL_FILE}"
        )
    return p


def read_fnet_model(path: str | Path) -> FnetModel:
    """Read a pytorch_fnet model (folder or model.p) as data only; refuse what cannot be mapped."""
    model_file = find_model_file(path)
    raw = torch_load_data(model_file)
    if not isinstance(raw, dict) or "nn_state" not in raw:
        raise LabelFreeError(
            f"{model_file} is not a pytorch_fnet model (no 'nn_state' in it); give the model.p "
            "that pytorch_fnet's training wrote"
        )
    if "fnet_model_kwargs" in raw:
        fmt = "master"
        kwargs = raw["fnet_model_kwargs"] or {}
        cls = str(kwargs.get("nn_class", "fnet.nn_modules.fnet_nn_3d.Net"))
        network = cls.removeprefix("fnet.nn_modules.").removesuffix(".Net")
        nn_kwargs = kwargs.get("nn_kwargs") or {}
    else:
        fmt = "release_1"
        network = str(raw.get("nn_module", ""))
        nn_kwargs = raw.get("nn_kwargs") or {}
    if network not in _NETWORKS:
        raise LabelFreeError(
            f"{model_file} holds a pytorch_fnet {network!r} network; only the paper's 3D U-Net "
            f"({' or '.join(_NETWORKS)}) can be imported"
        )
    if not isinstance(raw["nn_state"], dict):
        raise LabelFreeError(
            f"{model_file}: its 'nn_state' is a {type(raw['nn_state']).__name__}, not the "
            "network's weights (names -> tensors); the file is damaged or not pytorch_fnet's"
        )
    state = {str(k).removeprefix("module."): v for k, v in raw["nn_state"].items()}
    arch = _architecture(state, model_file)
    _check_kwargs(network, nn_kwargs, arch, model_file)
    options = _read_options(model_file.parent)
    transforms = _signal_transforms(options, fmt, model_file.parent)
    normalization, factors = _parse_transforms(transforms)
    count = raw.get("count_iter")
    return FnetModel(
        path=model_file,
        format=fmt,
        network=network,
        architecture=arch,
        state_dict=_rename_state(state, arch, model_file),
        normalization=normalization,
        resize_factors=factors,
        transforms=transforms,
        count_iter=int(count) if isinstance(count, int) else None,
    )


def _architecture(state: dict[str, Any], model_file: Path) -> Architecture:
    """Depth and widths read off the tensors (the kwargs are checked against them)."""
    try:
        first = state["net_recurse.sub_2conv_more.conv1.weight"]
        head = state["conv_out.weight"]
    except KeyError:
        raise LabelFreeError(
            f"{model_file}: its network weights are not those of pytorch_fnet's 3D U-Net "
            "(no net_recurse / conv_out layers)"
        ) from None
    depth = max(k.split(".").count("sub_u") for k in state)
    flat = getattr(first, "ndim", 5) == 4  # fnet_nn_2d: Conv2d weights (out, in, 3, 3)
    return Architecture(
        name="unet2d" if flat else "unet3d",
        depth=depth,
        width=int(head.shape[1]),
        in_channels=int(first.shape[1]),
        out_channels=int(head.shape[0]),
    )


def _check_kwargs(network: str, nn_kwargs: dict, arch: Architecture, model_file: Path) -> None:
    if (network == "fnet_nn_2d") != (arch.name == "unet2d"):
        raise LabelFreeError(
            f"{model_file}: a {network} network with {'2D' if arch.name == 'unet2d' else '3D'} "
            "weights; the file is inconsistent"
        )
    if network == "fnet_nn_2d":
        return  # its Net takes no settings: the weights' shapes are checked layer by layer
    fixed = _NETWORKS[network]
    depth, mult = fixed if fixed else (nn_kwargs.get("depth", 4), nn_kwargs.get("mult_chan"))
    if depth != arch.depth or (mult is not None and mult * arch.in_channels != arch.width):
        raise LabelFreeError(
            f"{model_file}: the network's settings ({network}, depth {depth}, mult_chan {mult}) "
            f"do not match its weights (depth {arch.depth}, {arch.width} channels); the file is "
            "inconsistent"
        )


def _our_name(key: str) -> str | None:
    """``net_recurse.sub_u.convt.weight`` -> ``body.below.up.weight``; None if not fnet's."""
    parts = key.split(".")
    if parts[0] == "conv_out":
        return ".".join(["head", *parts[1:]])
    if parts[0] != "net_recurse":
        return None
    out, i = ["body"], 1
    while i < len(parts) and parts[i] == "sub_u":
        out.append("below")
        i += 1
    if i >= len(parts) or parts[i] not in _LEVEL_NAMES:
        return None
    # inside the two-conv blocks pytorch_fnet and UNet3D share conv1 / bn1 / conv2 / bn2
    return ".".join([*out, _LEVEL_NAMES[parts[i]], *parts[i + 1 :]])


def _rename_state(state: dict[str, Any], arch: Architecture, model_file: Path) -> dict[str, Any]:
    """fnet's state dict under UNet3D's names, checked name by name and shape by shape."""
    renamed = {}
    for key, value in state.items():
        name = _our_name(key)
        if name is None:
            raise LabelFreeError(
                f"{model_file}: {key!r} is not a layer of pytorch_fnet's 3D U-Net; "
                "this network cannot be imported"
            )
        if arch.name == "unet2d" and getattr(value, "ndim", 0) == 4:
            value = value.unsqueeze(2)  # a 2D kernel as the flat 3D one: (.., 1, k, k)
        renamed[name] = value
    return check_state_dict(renamed, arch, model_file)


def _read_options(folder: Path) -> dict[str, Any]:
    path = folder / OPTIONS_FILE
    if not path.is_file():
        raise LabelFreeError(
            f"{path} is missing: it records how pytorch_fnet normalized and resized the training "
            f"images, which prediction must repeat; put it beside {MODEL_FILE}"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LabelFreeError(f"{path} is not valid JSON ({e})") from None


def _signal_transforms(options: dict[str, Any], fmt: str, folder: Path) -> list[str]:
    if fmt == "release_1":
        transforms = options.get("transform_signal")
    else:
        transforms = (options.get("dataset_train_kwargs") or {}).get("transform_signal")
    if not isinstance(transforms, list) or not all(isinstance(t, str) for t in transforms):
        raise LabelFreeError(
            f"{folder / OPTIONS_FILE} does not list the signal's transforms (transform_signal); "
            "without them the model's normalization is unknown"
        )
    return transforms


def _parse_transforms(
    transforms: list[str],
) -> tuple[Normalization, tuple[float, float, float] | None]:
    """Normalization and Resizer factors from transform strings such as
    ``fnet.transforms.Resizer((1, 0.37241, 0.37241))``, read with ``ast``, never evaluated."""
    normalization: Normalization | None = None
    factors = None
    for text in transforms:
        name, args, kwargs = _parse_call(text)
        if name in ("normalize", "Normalize") and kwargs.get("per_dim") is None and not args:
            normalization = Normalization(scope="per-image")
        elif name == "norm_around_center" and not args and not kwargs:
            normalization = Normalization(scope="center-slices", center_slices=32)
        elif name == "Resizer" and len(args) == 1 and kwargs.get("per_dim") is None:
            factors = _factors(args[0], text)
        elif name not in _NO_OPS:
            raise LabelFreeError(
                f"the training images went through {text!r}, which napari-labelfree cannot "
                "repeat before prediction; this model cannot be imported"
            )
    if normalization is None:
        raise LabelFreeError(
            f"the training images were not z-scored ({', '.join(transforms) or 'no transforms'}); "
            "napari-labelfree models expect z-scored input, so this model cannot be imported"
        )
    return normalization, factors


def _parse_call(text: str) -> tuple[str, list[Any], dict[str, Any]]:
    try:
        node = ast.parse(text.strip(), mode="eval").body
        if isinstance(node, ast.Call):
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
            node = node.func
        else:
            args, kwargs = [], {}
        name = ast.unparse(node).rsplit(".", 1)[-1]
    except (SyntaxError, ValueError):
        raise LabelFreeError(f"cannot read the transform {text!r} of train_options.json") from None
    return name, args, kwargs


MIN_ZOOM = 0.01


def _factors(value: Any, text: str) -> tuple[float, float, float]:
    if isinstance(value, (int, float)):
        value = (value, value, value)  # scipy.ndimage.zoom's one factor for every axis
    if isinstance(value, (tuple, list)) and len(value) == 2:
        value = (1.0, *value)  # a 2D model's Y, X zoom
    if not isinstance(value, (tuple, list)) or len(value) != 3 or min(value) <= 0:
        raise LabelFreeError(f"cannot read the zoom factors of {text!r} (three positive numbers)")
    factors = tuple(float(v) for v in value)
    # a resampling by more than 100x either way is a typo or damage, not a microscope's voxels
    if not all(MIN_ZOOM <= f <= 1 / MIN_ZOOM for f in factors):
        raise LabelFreeError(
            f"the zoom factors of {text!r} resample by more than {1 / MIN_ZOOM:g}x; "
            "train_options.json is damaged or not pytorch_fnet's"
        )
    return factors  # type: ignore[return-value]


def model_voxel_size(
    model: FnetModel, data_voxel_size: tuple[float, float, float] | None
) -> tuple[tuple[float, float, float], tuple[float, float, float], str | None]:
    """(model voxel size, data voxel size, warning or None).

    A Resizer zoomed the training images by f, so the model sees data_voxel / f; the paper's
    data voxel size is assumed, with a warning, when a Resizer is present and none is given.
    """
    warning = None
    if data_voxel_size is None:
        if model.resize_factors is None:
            raise NeedsDataVoxelSize(
                "this pytorch_fnet model does not record the voxel size of its training images "
                "(it did not resize them); give their voxel size (Z, Y, X in um)"
            )
        data_voxel_size = PAPER_DATA_VOXEL_SIZE_UM
        warning = (
            "the voxel size of the model's training images is not recorded; assuming the "
            f"paper's data, {_fmt(data_voxel_size)} um (Z, Y, X); give it if it was different"
        )
    data = tuple(float(v) for v in data_voxel_size)
    factors = model.resize_factors or (1.0, 1.0, 1.0)
    model_vox = tuple(round(d / f, 6) for d, f in zip(data, factors, strict=True))
    return model_vox, data, warning  # type: ignore[return-value]


def _fmt(v) -> str:
    return ", ".join(f"{x:g}" for x in v)


def structure_from_path(model_file: Path) -> str:
    """saved_models/dna/model.p -> dna; model_dna/model.p -> dna."""
    name = model_file.parent.name
    for prefix in ("model_", "model-"):
        if name.lower().startswith(prefix) and len(name) > len(prefix):
            name = name[len(prefix) :]
    return name


def fnet_spec(
    model: FnetModel,
    structure: str | None = None,
    data_voxel_size: tuple[float, float, float] | None = None,
    colormap: str | None = None,
) -> tuple[ModelSpec, str | None]:
    """The bundle spec of an imported model, and a warning when a voxel size was assumed."""
    model_vox, data_vox, warning = model_voxel_size(model, data_voxel_size)
    structure = structure or structure_from_path(model.path)
    provenance = {
        "imported_from": f"pytorch_fnet {model.format}",
        "source": str(model.path.resolve()),
        "source_sha256": sha256(model.path),
        "network": model.network,
        "iterations": model.count_iter,
        "transform_signal": model.transforms,
        "data_voxel_size_um": list(data_vox),
        "data_voxel_size_assumed": warning is not None,
        "trained": True,
    }
    spec = ModelSpec(
        structure=structure,
        colormap=colormap or colormap_for(structure),
        voxel_size_um=model_vox,
        normalization=model.normalization,
        architecture=model.architecture,
        provenance=provenance,
    )
    return spec, warning


def import_fnet(
    path: str | Path,
    out_dir: str | Path,
    structure: str | None = None,
    data_voxel_size: tuple[float, float, float] | None = None,
    colormap: str | None = None,
    overwrite: bool = False,
) -> tuple[ModelBundle, str | None]:
    """Write a pytorch_fnet model as a bundle (config.json + weights.safetensors) in ``out_dir``.

    Returns the bundle and a warning when the training data's voxel size was assumed.
    """
    from ..bundle import open_bundle, save_bundle

    model = read_fnet_model(path)
    spec, warning = fnet_spec(model, structure, data_voxel_size, colormap)
    save_bundle(out_dir, spec, model.state_dict, overwrite=overwrite)
    return open_bundle(out_dir), warning
