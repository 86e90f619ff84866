"""Typed settings: model spec, tiling and training, with a JSON round trip and a schema version."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import LabelFreeError

SCHEMA_VERSION = 1
# The paper resamples every image so that a voxel is a ~0.29 um cube.
PAPER_VOXEL_SIZE_UM: tuple[float, float, float] = (0.29, 0.29, 0.29)
# Bounds that keep a typo from allocating gigabytes: depth 6 already needs 64-voxel multiples, and
# 500 M parameters (2 GB of fp32 weights) is 20x the paper's network.
MAX_DEPTH = 6
MAX_PARAMETERS = 500_000_000


# Network kinds (``Architecture.name``): the paper's 3D U-Net; a 2D U-Net (one plane in, that plane
# out); a 2.5D U-Net (a window of ``in_planes`` z-planes in, the centre plane out). The 2D and 2.5D
# networks are the 3D one with flat (1x3x3) kernels, so tiling, blending, TTA and the inference
# twin serve all three; the 2.5D one reads its window with a first in_planes x 3 x 3 convolution.
KINDS = ("unet3d", "unet2d", "unet2.5d")
KIND_OPTIONS = {"3d": "unet3d", "2d": "unet2d", "2.5d": "unet2.5d"}  # the command-line names
PROJECTIONS = ("max", "mean")


@dataclass
class Architecture:
    """U-Net of the paper: ``depth`` down-samplings, ``width`` channels at the top level.

    ``name`` is the kind (:data:`KINDS`); ``in_planes`` the z-window of a 2.5D network (odd, at
    least 3; 1 for the other kinds).
    """

    name: str = "unet3d"
    depth: int = 4
    width: int = 32
    in_channels: int = 1
    out_channels: int = 1
    in_planes: int = 1

    def __post_init__(self) -> None:
        for name in ("depth", "width", "in_channels", "out_channels", "in_planes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise LabelFreeError(f"architecture {name} must be a whole number, got {value!r}")
        if self.name not in KINDS:
            raise LabelFreeError(
                f"unknown network kind {self.name!r}; this version knows "
                f"{', '.join(map(repr, KINDS))}: upgrade napari-labelfree to use this model"
            )
        if self.name == "unet2.5d" and (self.in_planes < 3 or self.in_planes % 2 == 0):
            raise LabelFreeError(
                f"a 2.5D network reads an odd number of z-planes (3 or more, e.g. 5) around the "
                f"one it predicts; got {self.in_planes}"
            )
        if self.name != "unet2.5d" and self.in_planes != 1:
            raise LabelFreeError(
                f"in_planes ({self.in_planes}) is a setting of 2.5D networks; a {self.name} "
                "network reads one plane (2D) or the whole stack (3D)"
            )
        if not 0 <= self.depth <= MAX_DEPTH:
            raise LabelFreeError(
                f"network depth must be 0 to {MAX_DEPTH} (the paper uses 4), got {self.depth}"
            )
        if min(self.width, self.in_channels, self.out_channels) < 1:
            raise LabelFreeError("network width and channel counts must be at least 1")
        if self.n_parameters() > MAX_PARAMETERS:
            raise LabelFreeError(
                f"a network of depth {self.depth} and width {self.width} would have "
                f"{self.n_parameters() / 1e6:,.0f} M parameters (the paper's has 23 M); "
                f"at most {MAX_PARAMETERS / 1e6:,.0f} M are allowed: use a smaller width or depth"
            )

    @property
    def flat(self) -> bool:
        """Whether the network works plane by plane (2D, 2.5D): never down-sampled along z."""
        return self.name != "unet3d"

    @property
    def multiple(self) -> int:
        """Every Y and X size fed to the network (and Z for 3D) must be a multiple of this."""
        return 2**self.depth

    @property
    def multiples(self) -> tuple[int, int, int]:
        """Z, Y, X sizes fed to the network must be multiples of these (Z: any for 2D, 2.5D)."""
        m = self.multiple
        return (1 if self.flat else m, m, m)

    def n_parameters(self) -> int:
        """Parameters of the U-Net this describes, counted without building it (see core.unet)."""
        k3, k2 = (9, 4) if self.flat else (27, 8)  # kernel volumes: 3x3(x3), 2x2(x2)
        first = 9 * self.in_planes if self.name == "unet2.5d" else k3

        def double_conv(n_in: int, n_out: int, k_first: int = k3) -> int:
            return k_first * n_in * n_out + k3 * n_out * n_out + 6 * n_out  # 2 convs + 2 BNs

        def level(n_in: int, n_out: int, depth: int, k_first: int = k3) -> int:
            n = double_conv(n_in, n_out, k_first)
            if depth > 0:
                n += k2 * n_out * n_out + 3 * n_out  # down conv + BatchNorm
                n += level(n_out, 2 * n_out, depth - 1)
                n += 2 * k2 * n_out * n_out + 3 * n_out  # transposed conv + BatchNorm
                n += double_conv(2 * n_out, n_out)
            return n

        head = k3 * self.width * self.out_channels + self.out_channels
        return level(self.in_channels, self.width, self.depth, first) + head


NORMALIZATION_SCOPES = ("per-image", "center-slices")


@dataclass
class Normalization:
    """How an image is normalized before it enters the network: (x - mean) / std.

    ``scope`` says which voxels give the mean and standard deviation: "per-image" is the whole
    image (the paper; pytorch_fnet's ``normalize``); "center-slices" is the ``center_slices``
    z-slices around the middle of the stack, counted at the model's voxel size (pytorch_fnet
    0.2's ``norm_around_center``, which keeps out-of-focus slices at the ends of deep stacks
    from shifting the statistics).
    """

    method: str = "zscore"
    scope: str = "per-image"
    center_slices: int = 32

    def __post_init__(self) -> None:
        if self.method != "zscore" or self.scope not in NORMALIZATION_SCOPES:
            raise LabelFreeError(
                f"unknown normalization {self.method!r} over {self.scope!r}; this version knows "
                f"'zscore' over {', '.join(map(repr, NORMALIZATION_SCOPES))}: upgrade "
                "napari-labelfree to use this model"
            )
        self.center_slices = int(self.center_slices)
        if self.center_slices < 1:
            raise LabelFreeError(
                f"center_slices must be a positive number of z-slices, got {self.center_slices}"
            )


@dataclass
class ModelSpec:
    """Everything a model bundle says about itself (stored as config.json)."""

    structure: str
    display_name: str = ""
    colormap: str = "green"
    target: str = ""
    modality: str = "bright-field"
    voxel_size_um: tuple[float, float, float] = PAPER_VOXEL_SIZE_UM
    normalization: Normalization = field(default_factory=Normalization)
    architecture: Architecture = field(default_factory=Architecture)
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    # statistics of the training inputs (core.trust.stats); None for models that lack them
    input_statistics: dict[str, Any] | None = None
    # "max" / "mean": trained against the z-projection of the target, the model predicts that one
    # plane per stack (2.5D: from the in_planes around the stack's centre; 3D: the projection
    # learned at every plane of the stack, whose projection over z is the plane); "": plane by
    # plane
    target_projection: str = ""
    # several networks of one architecture whose mean is the prediction (core.ensemble):
    # {"members": K, "seeds": [...], ...}; None for one network
    ensemble: dict[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not self.display_name:
            self.display_name = self.structure
        self.voxel_size_um = tuple(float(v) for v in self.voxel_size_um)  # type: ignore[assignment]
        self.unknown_keys: list[str] = []  # not a field: never written back
        if len(self.voxel_size_um) != 3 or not all(
            math.isfinite(v) and v > 0 for v in self.voxel_size_um
        ):
            raise LabelFreeError(
                f"voxel_size_um must be three positive numbers (Z, Y, X in um), "
                f"got {self.voxel_size_um}"
            )
        if self.target_projection not in ("", *PROJECTIONS):
            raise LabelFreeError(
                f"unknown target projection {self.target_projection!r}; this version knows "
                "'max' and 'mean': upgrade napari-labelfree to use this model"
            )
        if self.target_projection and self.architecture.name == "unet2d":
            raise LabelFreeError(
                "a projection target is for 2.5D and 3D networks (a stack in, one plane out); "
                "a 2D network reads one plane"
            )
        if self.ensemble is not None:
            k = self.ensemble.get("members") if isinstance(self.ensemble, dict) else None
            if not isinstance(k, int) or isinstance(k, bool) or k < 2:
                raise LabelFreeError(
                    f"ensemble must say its number of members (2 or more), got {self.ensemble!r}"
                )

    @property
    def kind(self) -> str:
        """The network kind: "unet3d", "unet2d" or "unet2.5d" (old configs: unet3d)."""
        return self.architecture.name

    @property
    def kind_label(self) -> str:
        """The kind as a user reads it: "3D", "2D", "2.5D (5 planes)", "2.5D (13 planes, max)"."""
        if self.ensemble:
            return f"{self._network_label}, ensemble of {self.ensemble_size}"
        return self._network_label

    @property
    def _network_label(self) -> str:
        projection = f"{self.target_projection}-projection" if self.target_projection else ""
        if self.kind == "unet3d":
            return f"3D ({projection} at every plane)" if projection else "3D"
        if self.kind == "unet2d":
            return "2D"
        extra = f", {projection}" if projection else ""
        return f"2.5D ({self.architecture.in_planes} planes{extra})"

    @property
    def ensemble_size(self) -> int:
        """How many networks the model holds (1, or K for ``labelfree train --ensemble K``)."""
        return int(self.ensemble["members"]) if self.ensemble else 1

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["voxel_size_um"] = list(self.voxel_size_um)
        if d["input_statistics"] is None:
            del d["input_statistics"]  # configs of models without statistics stay as they were
        if not d["target_projection"]:
            del d["target_projection"]
        if d["ensemble"] is None:
            del d["ensemble"]  # single-network configs stay as they were
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, d: Any) -> ModelSpec:
        """The spec stored in ``d`` (a parsed config.json); any malformation is a LabelFreeError.

        Keys this version does not know (written by a newer napari-labelfree within the same schema)
        are ignored and listed in ``spec.unknown_keys`` so callers can say so.
        """
        if not isinstance(d, dict):
            raise LabelFreeError(
                f"config.json holds a {type(d).__name__}, not an object: it is not a model config"
            )
        try:
            version = int(d.get("schema_version", 0))
        except (TypeError, ValueError):
            raise LabelFreeError(
                f"config.json has schema_version {d.get('schema_version')!r}; it must be a number"
            ) from None
        if version > SCHEMA_VERSION:
            raise LabelFreeError(
                f"this model uses config schema version {version}, newer than the {SCHEMA_VERSION} "
                "this napari-labelfree understands: upgrade napari-labelfree to load it"
            )
        if "structure" not in d:
            raise LabelFreeError(
                "config.json has no 'structure': it is not a napari-labelfree model"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        try:
            # an unknown setting of either would change the network or what it sees: refused
            kwargs["normalization"] = _sub(Normalization, d.get("normalization", {}))
            kwargs["architecture"] = _sub(Architecture, d.get("architecture", {}))
            kwargs["voxel_size_um"] = tuple(d.get("voxel_size_um", PAPER_VOXEL_SIZE_UM))
            for name in (
                "structure",
                "display_name",
                "colormap",
                "target",
                "modality",
                "target_projection",
            ):
                if name in kwargs and not isinstance(kwargs[name], str):
                    raise TypeError(f"{name} must be text, got {kwargs[name]!r}")
            for name in ("provenance", "metrics"):
                if name in kwargs and not isinstance(kwargs[name], dict):
                    raise TypeError(f"{name} must be an object, got {kwargs[name]!r}")
            if not isinstance(kwargs.get("ensemble") or {}, dict):
                raise TypeError(f"ensemble must be an object, got {kwargs['ensemble']!r}")
            if not isinstance(kwargs.get("input_statistics") or {}, dict):
                kwargs["input_statistics"] = None  # unreadable statistics: the check says so
            kwargs["schema_version"] = SCHEMA_VERSION
            spec = cls(**kwargs)
        except (TypeError, ValueError) as e:
            raise LabelFreeError(f"config.json is malformed: {e}") from None
        spec.unknown_keys = sorted(set(d) - known)
        return spec

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise LabelFreeError(
                f"config.json is not valid JSON ({e}); restore it or re-export the model"
            ) from e
        return cls.from_dict(d)


def _sub(kind: type, value: Any) -> Any:
    """A nested settings dataclass from its JSON object; a key this version lacks is refused.

    An unknown setting of the network or its normalization (a newer version's option, a typo)
    would build another network, or feed it other numbers, than the weights were trained with.
    """
    name = kind.__name__.lower()
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be an object, got {value!r}")
    unknown = sorted(set(value) - {f.name for f in dataclasses.fields(kind)})
    if unknown:
        raise LabelFreeError(
            f"config.json has unknown {name} setting(s) {', '.join(map(repr, unknown))}: remove "
            "them if they are a mistake, or upgrade napari-labelfree to use this model"
        )
    return kind(**value)


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class TilingConfig:
    """How a volume is cut into tiles for the network (sizes in voxels at the model's voxel size).

    ``tile_shape`` is the largest tile; prediction fits the tile to the volume (see
    ``tiling.fit_tile_shape``). The default holds a 64x256x256 stack in one tile and covers 512
    voxels in two tiles overlapping by 32 (272 = 256 + 16): large tiles run fastest per voxel,
    and at most ~0.9 GB of activations in bf16 (~1.8 GB fp32) keeps memory flat as volumes grow.
    On a CPU computing in fp32 the default is capped at ``tiling.CPU_FP32_MAX_TILE`` (64x144x272:
    ~0.55x the activations for 1.125x the work at 256 voxels), since fp32 is the default on the
    plain CPUs with the least memory; a tile asked for explicitly is kept.
    ``precision``: "auto" (bf16 on CUDA GPUs that have it, else fp16; bf16 on CPUs with native
    bf16 instructions, fp32 on other CPUs and MPS), "fp32", "bf16" or "fp16". bf16 matched fp32
    at Pearson r >= 0.9999 on the paper network (benchmarks/cpu_predict.py) at 1.7-1.9x the
    fp32 speed on the CPU; "fp32" gives float-exact results.
    """

    tile_shape: tuple[int, int, int] = (64, 272, 272)
    overlap: float = 0.1
    blend: str = "gaussian"  # "gaussian" or "constant"
    batch_size: int = 1
    max_oom_retries: int = 3
    precision: str = "auto"
    # per output a second one, "<name> (uncertainty)": the spread over the TTA variants (core.trust)
    uncertainty: bool = False
    tta: str = "none"  # test-time augmentation (predict.tta): "none", "yx" (8 variants), "yxz" (16)

    def __post_init__(self) -> None:
        self.tile_shape = tuple(int(v) for v in self.tile_shape)  # type: ignore[assignment]
        if len(self.tile_shape) != 3 or min(self.tile_shape) < 1:
            raise LabelFreeError(
                f"tile shape must be three positive integers Z,Y,X, got {self.tile_shape}"
            )
        if not 0.0 <= self.overlap < 1.0:
            raise LabelFreeError(f"tile overlap must be a fraction in [0, 1), got {self.overlap}")
        if self.tta not in ("none", "yx", "yxz"):
            raise LabelFreeError(
                f"test-time augmentation must be 'none', 'yx' or 'yxz', got {self.tta!r}"
            )
        if self.blend not in ("gaussian", "constant"):
            raise LabelFreeError(f"blend must be 'gaussian' or 'constant', got {self.blend!r}")
        if self.precision not in PRECISIONS:
            raise LabelFreeError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
