"""`labelfree train`: train one structure model from registered transmitted-light / fluorescence pairs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..core.config import PAPER_VOXEL_SIZE_UM, PRECISIONS
from . import _args, _kind


def register(sub: argparse._SubParsersAction) -> None:
    from ..core.train import TrainConfig
    from ..core.train.config import ADAPTATION

    d = TrainConfig()
    p = sub.add_parser(
        "train",
        help="train a model from paired transmitted-light / fluorescence images",
        description="Train one 3D U-Net (one structure) on random patches of z-scored image pairs, as "
        "in Ounkomol et al. 2018. DATA are image files holding both channels, or CSV tables with "
        "columns signal,target (paths; optional signal_channel,target_channel). Writes a model "
        "folder with the bundle, checkpoint.safetensors, train_log.csv and loss_curve.png.",
    )
    p.add_argument(
        "data", nargs="+", metavar="DATA", help="image files (both channels) or CSV tables"
    )
    p.add_argument("-o", "--output", required=True, metavar="MODEL_DIR", help="new model folder")
    p.add_argument(
        "--signal-channel", default=None, help="transmitted-light channel (name or index)"
    )
    p.add_argument("--target-channel", default=None, help="fluorescence channel (name or index)")
    p.add_argument(
        "--structure",
        default=None,
        help="structure name, e.g. dna, tom20 [the target channel's name]",
    )
    a = ADAPTATION  # the smaller budget of adapting a model (minutes on a CPU)
    p.add_argument(
        "--iterations",
        type=_args.positive_int,
        default=None,
        help=f"[{d.iterations}; {a['iterations']} when starting from a model]",
    )
    p.add_argument(
        "--batch-size",
        type=_args.positive_int,
        default=None,
        help=f"[{d.batch_size}; {a['batch_size']} when starting from a model]",
    )
    p.add_argument(
        "--patch-shape",
        type=_args.shape,
        default=None,
        metavar="Z,Y,X",
        help=f"patch shape in voxels [{','.join(map(str, d.patch_shape))}; "
        f"{','.join(map(str, a['patch_shape']))} when starting from a model]",
    )
    p.add_argument(
        "--lr", type=_args.positive_float, default=d.lr, help=f"Adam learning rate [{d.lr}]"
    )
    p.add_argument("--depth", type=int, default=4, help="U-Net depth (down-samplings) [4]")
    p.add_argument("--width", type=int, default=32, help="channels at the top level [32]")
    p.add_argument(
        "--voxel-size",
        type=_kind.voxel_size,
        default=PAPER_VOXEL_SIZE_UM,
        metavar="Z,Y,X",
        help="voxel size in um the model works at; images are resampled to it [0.29,0.29,0.29]",
    )
    _kind.add_kind_args(p)
    p.add_argument(
        "--data-voxel-size",
        type=_kind.voxel_size,
        default=None,
        metavar="Z,Y,X",
        help="voxel size in um of the data, where the files lack it or it is wrong",
    )
    val = p.add_mutually_exclusive_group()
    val.add_argument(
        "--val", nargs="+", default=None, metavar="DATA", help="validation image pairs"
    )
    val.add_argument(
        "--val-fraction",
        type=float,
        default=None,
        metavar="F",
        help="hold out this fraction of the DATA pairs for validation",
    )
    p.add_argument(
        "--val-strip",
        type=float,
        default=d.val_strip,
        metavar="F",
        help="with no --val: hold out this share of each image's width (its right end) as a "
        f"validation strip; 0 trains on everything without validation [{d.val_strip}]",
    )
    p.add_argument(
        "--checkpoint-every",
        type=_args.positive_int,
        default=d.checkpoint_every,
        help=f"[{d.checkpoint_every}]",
    )
    p.add_argument(
        "--validate-every",
        type=_args.positive_int,
        default=d.validate_every,
        help=f"[{d.validate_every}]",
    )
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed [{d.seed}]")
    p.add_argument(
        "--ensemble",
        type=_ensemble_size,
        default=None,
        metavar="K",
        help="train K networks (seeds SEED..SEED+K-1) into one model folder: its prediction is "
        "their mean, its --uncertainty includes their disagreement. Costs K x the training time "
        "and K x the prediction time (2 to 10; not with --resume or --gpus) [one network]",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=d.precision,
        help="forward-pass precision: auto (bf16 autocast on CUDA, else fp16 there; fp32 "
        "on CPU and MPS), fp32, bf16 or fp16 (bf16 on a CPU is faster but can give NaN "
        "losses on small patches) [auto]",
    )
    add_recipe_args(p, d)
    p.add_argument(
        "--init",
        default=None,
        metavar="MODEL",
        help="start from this model (name or folder), taking its weights, architecture, voxel "
        "size and normalization (--depth, --width, --voxel-size are ignored); 'none' for a new "
        "network [the built-in model of --structure where there is one]",
    )
    p.add_argument("--colormap", default=None, help="napari colormap of the overlay [by structure]")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in MODEL_DIR from its checkpoint"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a model or training run already in MODEL_DIR",
    )
    p.add_argument(
        "--log-every",
        type=_args.count,
        default=d.log_every,
        metavar="N",
        help="read the loss every N steps (0: every step on the CPU, every 25 on a GPU) [0]",
    )
    p.add_argument(
        "--gpus",
        type=_args.positive_int,
        default=1,
        metavar="N",
        help="train on N GPUs of this machine, one process each (runs torchrun; the batch size "
        "is per GPU) [1]",
    )
    _args.add_device(p)
    p.set_defaults(
        func=run,
        train_parser=p,
        flag_hints={
            **_args.flag_hints("device", "precision"),
            "output": "-o MODEL_DIR",
            "resume": "--resume",
            "overwrite": "--overwrite",
            "lr": "--lr",
            "val_strip": "give --val DATA, or --val-strip 0 to train on everything",
            "val": "give --val DATA to score it",
            "init": "--init MODEL, or --init none for a new network",
        },
    )


def add_recipe_args(p: argparse.ArgumentParser, d: Any) -> None:
    """The recipe options (core.train.recipe / augment); defaults from TrainConfig."""
    from ..core.train.config import LOSSES, OPTIMIZERS, SCHEDULES, WEIGHTS_INITS

    p.add_argument(
        "--paper-recipe",
        action="store_true",
        help="the paper's recipe: Adam, constant lr, MSE, no augmentation, last weights kept "
        "(overrides the four options below)",
    )
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=d.augment,
        help="flips, rotations, intensity, noise and blur augmentation of training patches "
        f"(docs/training.md) [{'on' if d.augment else 'off'}]",
    )
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer, help=f"[{d.optimizer}]")
    p.add_argument(
        "--weight-decay",
        type=_args.non_negative_float,
        default=d.weight_decay,
        help=f"AdamW [{d.weight_decay}]",
    )
    p.add_argument(
        "--schedule", choices=SCHEDULES, default=d.schedule, help=f"lr schedule [{d.schedule}]"
    )
    p.add_argument("--loss", choices=LOSSES, default=d.loss, help=f"[{d.loss}]")
    p.add_argument(
        "--weights-init",
        choices=WEIGHTS_INITS,
        default=d.weights_init,
        help=f"a new network's initial weights: PyTorch's or pytorch_fnet's [{d.weights_init}]",
    )
    p.add_argument(
        "--keep-last",
        dest="keep_best",
        action="store_false",
        help="keep the last weights, not the best validated ones",
    )


def run(args: argparse.Namespace) -> int:
    from ..core.config import Architecture, ModelSpec
    from ..core.data import expand, load_pairs, split_validation
    from ..core.errors import LabelFreeError
    from ..core.events import drain
    from ..core.structures import colormap_for
    from ..core.train import TrainConfig, ddp, iter_train
    from ..core.train.adapt import before_after
    from ..core.train.init import resolve_init, spec_from_init
    from ..core.train.patches import check_one_plane_targets

    if args.depth < 1 or args.width < 1:
        raise LabelFreeError("--depth and --width must be positive integers")
    if args.ensemble and (args.resume or args.gpus != 1):
        raise LabelFreeError(
            "--ensemble trains its members one after another on one device and cannot be "
            "resumed: leave out --resume and --gpus (an interrupted ensemble starts again)"
        )
    if args.gpus != 1:
        return launch_ranks(args)
    structure = args.structure or (
        str(args.target_channel) if args.target_channel is not None else ""
    )
    if not structure or structure.lstrip("-").isdigit():
        raise LabelFreeError("name the structure the model predicts: --structure NAME (e.g. dna)")
    kind = _kind.kind_settings(args, tuple(args.voxel_size))
    if args.kind != "3d" and args.init is None:
        args.init = "none"  # the built-in models are 3D: a 2D / 2.5D network starts new
    init, budget, starting = starting_model(args.init, structure)
    if args.kind != "3d" and args.patch_shape is None and init is None:
        budget["patch_shape"] = _kind.FLAT_PATCH
    settings = {
        "iterations": args.iterations or budget["iterations"],
        "batch_size": args.batch_size or budget["batch_size"],
        "patch_shape": args.patch_shape or budget["patch_shape"],
        "lr": args.lr,
        "checkpoint_every": args.checkpoint_every,
        "validate_every": args.validate_every,
        "seed": args.seed,
        "precision": args.precision,
        "weight_decay": args.weight_decay,
        "log_every": args.log_every,
        "weights_init": args.weights_init,
        "val_strip": args.val_strip,
    }
    if args.paper_recipe:
        config = TrainConfig.paper(**settings)
    else:
        recipe = ("augment", "optimizer", "schedule", "loss", "keep_best")
        config = TrainConfig(**settings, **{k: getattr(args, k) for k in recipe})
    specs = expand(args.data, args.signal_channel, args.target_channel)
    data_voxel = _kind.data_voxel_size(args.data_voxel_size)
    train, notices = load_pairs(specs, data_voxel)
    val = None
    if args.val:
        val, more = load_pairs(
            expand(args.val, args.signal_channel, args.target_channel), data_voxel
        )
        notices += more
    elif args.val_fraction is not None:
        train, val = split_validation(train, args.val_fraction, args.seed)
    spec = ModelSpec(
        structure=structure,
        colormap=args.colormap or colormap_for(structure),
        target=str(args.target_channel or ""),
        voxel_size_um=kind["voxel_size_um"],
        architecture=Architecture(depth=args.depth, width=args.width, **kind["architecture"]),
        target_projection=kind["target_projection"],
        # not "bright-field" unasked: training names the contrast its files record, if any
        modality="transmitted-light",
    )
    # a model to fine-tune brings its own kind of network; refused before a line is said
    trained = spec_from_init(spec, resolve_init(init)) if init else spec
    check_one_plane_targets([*train, *(val or [])], trained)
    for n in ([starting] if starting else []) + list(dict.fromkeys(notices)):
        print(f"labelfree train: {n}", file=sys.stderr)
    print(
        f"training {structure}: {len(train)} training pair(s), {len(val or [])} validation pair(s)"
        + (" (a strip of each is held out instead)" if not val and config.val_strip > 0 else "")
        + f", {config.iterations} iterations of {config.batch_size} x {config.patch_shape}",
        file=sys.stderr,
    )
    if args.ensemble:
        from ..core.train.ensemble import iter_train_ensemble

        gen = iter_train_ensemble(
            train,
            spec,
            args.output,
            args.ensemble,
            config,
            val=val,
            device=args.device,
            overwrite=args.overwrite,
            init=init,
        )
        bundle = drive_training(gen, ensemble=True, hints=args.flag_hints)
        m = bundle.spec.metrics
        line = f"wrote {bundle.path} (an ensemble of {args.ensemble}, {m.get('iterations')} iterations each"
        if m.get("val_pearson_r_mean") is not None:
            line += f"; validation Pearson r of their mean {m['val_pearson_r_mean']:.3f}"
        print(line + ")")
        return 0
    joined = ddp.init_from_env(args.device)  # under torchrun: one rank of several
    try:
        gen = iter_train(
            train,
            spec,
            args.output,
            config,
            val=val,
            device=args.device,
            resume=args.resume,
            overwrite=args.overwrite,
            init=init,
        )
        if not ddp.Ranks.current().main:
            drain(gen)  # rank 0 reports and writes; the others train quietly
            return 0
        bundle = drive_training(gen, hints=args.flag_hints)
    finally:
        if joined:
            ddp.shutdown()
    m = bundle.spec.metrics
    line = f"wrote {bundle.path} ({m.get('iterations')} iterations, {bundle.spec.provenance.get('train_time_s')} s"
    if m.get("best_iteration") is not None:
        line += f"; best validation at iteration {m['best_iteration']}"
    if m.get("val_pearson_r_mean") is not None:
        line += f"; validation Pearson r {m['val_pearson_r_mean']:.3f}, nl2 {m['val_nl2_mean']:.3f}"
    print(line + ")")
    compared = before_after(m)  # adapted from a model: its score and the new one's, same data
    if compared:
        print(compared)
    return 0


def starting_model(requested: str | None, structure: str) -> tuple[Any, dict[str, Any], str]:
    """The model training starts from (None: a new network), the default budget that goes with
    it, and what to say of it ("" for nothing).

    No --init: the built-in model of the structure where there is one (to be said on stderr,
    once the data are checked), with the adaptation budget; --init none: a new network with the
    paper's budget.
    """
    from ..core.train import TrainConfig
    from ..core.train.adapt import builtin_for
    from ..core.train.config import ADAPTATION

    d = TrainConfig()
    scratch = {"iterations": d.iterations, "batch_size": d.batch_size, "patch_shape": d.patch_shape}
    if requested is not None and requested.lower() == "none":
        return None, scratch, ""
    if requested is not None:
        return requested, dict(ADAPTATION), ""
    builtin = builtin_for(structure)
    if builtin is None:
        return None, scratch, ""
    said = (
        f"starting from the built-in {builtin.name} model (its network, weights and voxel size, "
        "or your images' own where coarser; --init none trains a new network)"
    )
    return builtin.path, dict(ADAPTATION), said


def _ensemble_size(text: str) -> int:
    """--ensemble K, checked before torch is imported (one line: how many, and why)."""
    from ..core.ensemble import check_ensemble_size
    from ..core.errors import LabelFreeError

    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of members, got {text!r}") from None
    try:
        return check_ensemble_size(k)
    except LabelFreeError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def drive_training(gen: Any, ensemble: bool = False, hints: dict[str, str] | None = None) -> Any:
    """Drain a training generator into a tqdm bar (loss, it/s), or, where stderr is no terminal,
    into a progress line every few minutes (``LogLines``); Ctrl-C keeps the weights so far (an
    ``ensemble``'s: nothing, its output is left as it was); ``hints``: the command's flags for a
    notice's field (``_args.with_hint``)."""
    from tqdm import tqdm

    from ..core.events import Notice
    from ..core.train import TrainStep, Validated
    from ._progress import LogLines, training_line

    bar = None
    last_val = ""
    log = LogLines()  # what a log file gets instead of the bar
    try:
        while True:
            try:
                event = next(gen)
            except StopIteration as stop:
                return stop.value
            if isinstance(event, TrainStep):
                if bar is None:
                    bar = tqdm(
                        total=event.total,
                        initial=event.iteration - 1,
                        unit="it",
                        file=sys.stderr,
                        dynamic_ncols=True,
                        desc="training",
                        disable=None,  # off when stderr is not a terminal (logs, batch jobs)
                    )
                bar.update(event.iteration - bar.n)
                bar.set_postfix_str(
                    f"loss {event.loss:.4f}, {event.its_per_s:.2f} it/s{last_val}", refresh=False
                )
                # a log file's line (none at the last step: the result line follows it)
                if bar.disable and event.iteration < event.total and log.due():
                    line = training_line(event.iteration, event.total, event.loss, event.its_per_s)
                    print(f"labelfree train: {line}{last_val}", file=sys.stderr, flush=True)
            elif isinstance(event, Validated):
                last_val = f", val loss {event.val_loss:.4f}, val r {event.val_pearson_r:.3f}"
            elif isinstance(event, Notice):
                text = _args.with_hint(event.text, event.field, hints or {})
                tqdm.write(f"labelfree train: {text}", file=sys.stderr)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
            bar = None
        gen.close()  # the generator saves a checkpoint and the weights so far as a usable bundle
        # the message replaces main()'s generic one, which would be wrong here
        if ensemble:
            raise KeyboardInterrupt(
                "no ensemble was written (its output folder is as it was); train it again"
            ) from None
        raise KeyboardInterrupt(
            "the weights so far are saved as a model; continue with --resume"
        ) from None
    finally:
        if bar is not None:
            bar.close()


def launch_ranks(args: argparse.Namespace) -> int:
    """``--gpus N``: the same command in N processes under torchrun; its exit status."""
    import subprocess

    from ..core.errors import LabelFreeError

    if args.gpus < 1:
        raise LabelFreeError("--gpus must be a positive integer")
    argv = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={args.gpus}",
        "-m",
        "napari_labelfree",
        "train",
        *_argv_of(args.train_parser, args, skip={"gpus"}),
    ]
    print(f"labelfree train: starting {args.gpus} processes (torchrun)", file=sys.stderr)
    try:
        return subprocess.call(argv)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            "each process saves the weights so far; continue with --resume"
        ) from None


def _argv_of(
    parser: argparse.ArgumentParser, args: argparse.Namespace, skip: set[str]
) -> list[str]:
    """The command-line words that give ``args`` again (for starting the same command anew)."""
    words: list[str] = []
    positional: list[str] = []
    for action in parser._actions:  # argparse keeps no other list of a parser's options
        value = getattr(args, action.dest, None)
        if action.dest in skip or action.dest == "help" or value is None:
            continue
        if not action.option_strings:
            positional += [str(v) for v in value] if isinstance(value, list) else [str(value)]
            continue
        flag = action.option_strings[-1]
        if isinstance(action, argparse.BooleanOptionalAction):
            words += [action.option_strings[0 if value else 1]]
        elif isinstance(action, argparse._StoreTrueAction):
            words += [flag] if value else []
        elif isinstance(action, argparse._StoreFalseAction):
            words += [] if value else [flag]
        elif isinstance(value, list):
            words += [flag, *map(str, value)]
        elif isinstance(value, tuple):
            words += [flag, ",".join(map(str, value))]
        else:
            words += [flag, str(value)]
    return words + ["--", *positional] if positional else words
