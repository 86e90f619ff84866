"""Argument types shared by the sub-commands."""

from __future__ import annotations

import argparse


def triple(kind: type):
    """Parse 'A,B,C' (Z, Y, X) into a tuple of three ``kind`` values."""

    def parse(text: str) -> tuple:
        parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
        try:
            values = tuple(kind(p) for p in parts)
        except ValueError:
            values = ()
        if len(values) != 3 or min(values) <= 0:
            raise argparse.ArgumentTypeError(f"expected three positive numbers Z,Y,X, got {text!r}")
        return values

    return parse


voxel_size = triple(float)
shape = triple(int)


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA, else MPS, else CPU), cpu, cuda or cuda:N [auto]",
    )
