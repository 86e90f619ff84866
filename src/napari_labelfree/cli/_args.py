"""Argument types shared by the sub-commands."""

from __future__ import annotations

import argparse
import math


def triple(kind: type):
    """Parse 'A,B,C' (Z, Y, X) into a tuple of three ``kind`` values."""

    def parse(text: str) -> tuple:
        parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
        try:
            values = tuple(kind(p) for p in parts)
        except ValueError:
            values = ()
        if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
            raise argparse.ArgumentTypeError(f"expected three positive numbers Z,Y,X, got {text!r}")
        return values

    return parse


voxel_size = triple(float)
shape = triple(int)


def number(kind: type, least: float, strict: bool):
    """Parse one finite ``kind`` above ``least`` (``strict``) or from it: told at parse time,
    before a command imports torch."""
    words = {
        (int, True): "a positive whole number",
        (int, False): f"a whole number from {least:g}",
        (float, True): "a positive number",
        (float, False): f"a number from {least:g}",
    }[kind, strict]

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if (
            value is None
            or not math.isfinite(value)
            or value < least
            or (strict and value == least)
        ):
            raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}")
        return value

    return parse


positive_int = number(int, 0, strict=True)
count = number(int, 0, strict=False)
positive_float = number(float, 0.0, strict=True)
non_negative_float = number(float, 0.0, strict=False)

# core errors and notices name the setting to change (LabelFreeError.fields, Notice.field) in
# words every front end shares; a command lists the ones it has a flag for, and the flag is added
FLAGS = {
    "voxel_size": "--voxel-size Z,Y,X",
    "channel": "--channel",
    "force": "--force",
    "device": "--device",
    "tile_shape": "--tile Z,Y,X",
    "precision": "--precision",
    "models": "-m MODEL",
}


def flag_hints(*fields: str) -> dict[str, str]:
    """The flags of ``fields`` (for ``parser.set_defaults(flag_hints=...)``)."""
    return {f: FLAGS[f] for f in fields}


def with_hint(text: str, fields: tuple[str, ...] | str | None, hints: dict[str, str]) -> str:
    """``text`` with the command's flags for ``fields`` appended, e.g. "... (--voxel-size Z,Y,X)"."""
    if isinstance(fields, str):
        fields = (fields,)
    flags = [hints[f] for f in fields or () if f in hints]
    return f"{text} ({', '.join(flags)})" if flags else text


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA, else MPS, else CPU), cpu, cuda or cuda:N [auto]",
    )
