"""The `labelfree` command: batch work on the same core functions the napari widgets use.

Each sub-command lives in its own module with ``register(subparsers)``. Building the parser imports
every one of them, so they import torch-backed core modules inside their ``run`` functions only:
``labelfree --help`` and ``labelfree models`` never load torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings
from collections.abc import Sequence

from ..core.errors import LabelFreeError
from ._args import with_hint

# sub-command modules, in the order `labelfree --help` lists them
COMMANDS = [
    "predict",
    "models",
    "init_model",
    "import_model",
    "export",
    "synth",
    "train",
    "evaluate",
    "demo",
]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="labelfree",
        description="Predict fluorescence of cell structures from transmitted-light z-stacks "
        "(label-free prediction, Ounkomol et al. 2018).",
    )
    parser.add_argument("--version", action="version", version=f"napari-labelfree {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{name}":
                continue  # command not part of this build
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="labelfree: %(message)s")
    # library deprecation chatter is for developers, not for someone running a batch job
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        return int(args.func(args) or 0)
    except LabelFreeError as e:
        message = with_hint(str(e), e.fields, getattr(args, "flag_hints", {}))
        print(f"labelfree {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        # a command that keeps something on Ctrl-C (train saves its weights) says so in the message
        what = str(e) or "nothing half-written was kept"
        print(f"labelfree {args.command}: interrupted; {what}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
