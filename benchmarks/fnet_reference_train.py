"""A plain pytorch_fnet-style training loop on the ISL field: the reference ``labelfree train`` is judged by.

Written from pytorch_fnet's training recipe (fnet/fnet_model.py, fnet/data/bufferedpatchdataset.py),
not from this package's training code, so that a difference between the two shows up:

* every image z-scored on its own (the training part and the test part separately);
* random patches, each start uniform over every valid position (fnet's BufferedPatchDataset);
* fnet's weight initialisation (conv weights N(0, 0.02), BatchNorm weights N(1, 0.02), biases as
  torch makes them) and its Adam (lr 0.001, betas (0.5, 0.999)); ``--torch-init`` / ``--betas``
  switch each back to torch's defaults to tell which one matters;
* MSE on the z-scored target, fp32, the network in train mode; prediction in eval mode on the whole
  test part in one pass (mirror-padded to a multiple of 2**depth, then cropped).

The network is this package's U-Net (the same architecture pytorch_fnet's fnet_nn_3d builds). The
data, split and scoring are ``real_data_isl.py``'s, so the numbers compare one to one.

Usage::

    nice python benchmarks/fnet_reference_train.py --seeds 0 1 2 [--targets DAPI]
    # the loop trained without the default's automatic strip, scored on it too (strip_r)
    nice python benchmarks/fnet_reference_train.py --strip --split top --seeds 0
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_data_isl as isl  # noqa: E402  (a script beside this one, not a package)


def fnet_init(net) -> None:
    """pytorch_fnet's ``_weights_init``: conv weights N(0, 0.02); BatchNorm weights N(1, 0.02), bias 0."""
    for m in net.modules():
        name = m.__class__.__name__
        if name.startswith("Conv"):
            m.weight.data.normal_(0.0, 0.02)
        elif "BatchNorm" in name:
            m.weight.data.normal_(1.0, 0.02)
            m.bias.data.fill_(0)


def pad_to_multiple(a: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[slice, ...]]:
    """Mirror-pad every axis up to a multiple of ``multiple``; the slices that crop back."""
    pads = []
    for n in a.shape:
        extra = -n % multiple
        pads.append((extra // 2, extra - extra // 2))
    crop = tuple(slice(lo, lo + n) for (lo, _), n in zip(pads, a.shape, strict=True))
    return np.pad(a, pads, mode="symmetric"), crop


def train_fnet_style(
    signal: np.ndarray,
    target: np.ndarray,
    predict: Sequence[np.ndarray],
    *,
    depth: int,
    width: int,
    iterations: int,
    batch_size: int,
    patch: tuple[int, int, int],
    seed: int,
    betas: tuple[float, float] = (0.5, 0.999),
    torch_init: bool = False,
) -> list[np.ndarray]:
    """Train on one z-scored pair with fnet's recipe; return the predictions of the ``predict``
    signals (ZYX), each in one pass."""
    import torch

    from napari_labelfree.core.unet import unet3d

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = unet3d(depth, width)
    if not torch_init:
        fnet_init(net)
    # channels-last only for speed on the CPU (same numbers up to float rounding)
    cl = torch.channels_last_3d
    net = net.to(memory_format=cl)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=betas)
    multiple = 2**depth
    sig, _ = pad_to_multiple(zscore(signal), 1)
    # an image thinner than a patch is mirror-padded up to it, as fnet's Padder would
    short = [max(0, p - n) for n, p in zip(sig.shape, patch, strict=True)]
    pads = [(s // 2, s - s // 2) for s in short]
    sig = np.pad(sig, pads, mode="symmetric")
    tgt = np.pad(zscore(target), pads, mode="symmetric")
    s_t, t_t = torch.from_numpy(sig), torch.from_numpy(tgt)
    ranges = [n - p + 1 for n, p in zip(sig.shape, patch, strict=True)]
    net.train()
    for _ in range(iterations):
        starts = [[int(rng.integers(0, r)) for r in ranges] for _ in range(batch_size)]
        xs = [s_t[z : z + patch[0], y : y + patch[1], x : x + patch[2]] for z, y, x in starts]
        ys = [t_t[z : z + patch[0], y : y + patch[1], x : x + patch[2]] for z, y, x in starts]
        x = torch.stack(xs)[:, None].contiguous(memory_format=cl)
        y = torch.stack(ys)[:, None]
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        opt.step()
    net.eval()
    preds = []
    for image in predict:
        padded, crop = pad_to_multiple(zscore(image), multiple)
        with torch.no_grad():
            preds.append(net(torch.from_numpy(padded)[None, None])[0, 0].numpy()[crop])
    return preds


def zscore(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    return ((a - a.mean()) / a.std()).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="pytorch_fnet-style reference loop on the ISL field.")
    isl.add_data_args(ap)
    ap.add_argument("--torch-init", action="store_true", help="torch's default init, not fnet's")
    ap.add_argument("--betas", type=float, nargs=2, default=(0.5, 0.999), help="[0.5 0.999]")
    ap.add_argument(
        "--strip",
        action="store_true",
        help="train without the strip labelfree train holds out automatically (the same cut) and "
        "also score that strip (strip_r): the two loops compared on validation data alone",
    )
    args = ap.parse_args(argv)
    if isl.load_split(args) is None:
        return 0
    import torch

    torch.set_num_threads(max(1, args.threads))
    label = f"fnet-ref{'-torchinit' if args.torch_init else ''}-b{args.betas[0]:g}" + (
        "-strip" if args.strip else ""
    )
    label += isl.size_label(args)
    for split, name, seed in itertools.product(args.split, args.targets, args.seeds):
        if isl.already_done(args, label, name, split, seed):
            continue
        data = isl.load_split(args, split)
        t0 = time.time()
        train_sig, train_tgt, test_sig, truth = isl.part(data, name)
        strip = None
        if args.strip:  # cut exactly as the trainer cuts its automatic strip (core.train.holdout)
            from napari_labelfree.core.train import ImagePair, TrainConfig
            from napari_labelfree.core.train.holdout import hold_out_strips

            pairs, val, _ = hold_out_strips(
                [ImagePair(train_sig, train_tgt, None, name)],
                TrainConfig().val_strip,
                args.patch_shape[2],
                1.0,
            )
            train_sig, train_tgt, strip = pairs[0].signal, pairs[0].target, val[0]
        preds = train_fnet_style(
            train_sig,
            train_tgt,
            [test_sig] + ([] if strip is None else [strip.signal]),
            depth=args.depth,
            width=args.width,
            iterations=args.iterations,
            batch_size=args.batch_size,
            patch=tuple(args.patch_shape),
            seed=seed,
            betas=tuple(args.betas),
            torch_init=args.torch_init,
        )
        extra = {}
        if strip is not None:  # scored like the test part: max projection against the 2D target
            from napari_labelfree.core.metrics import pearson_r

            strip_pred = preds[1]
            extra["strip_r"] = round(pearson_r(strip_pred.max(axis=0), strip.target[0]), 4)
        isl.report(label, name, seed, preds[0], truth, time.time() - t0, **extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
