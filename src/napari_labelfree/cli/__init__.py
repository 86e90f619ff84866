"""The `labelfree` command: batch work on the same core functions the napari widgets use.

Each sub-command lives in its own module with ``register(subparsers)``. Building the parser imports
every one of them, so they import torch-backed core modules inside their ``run`` functions only:
``labelfree --help`` and ``labelfree models`` never load torch.
"""

from __future__ import annotations

# only the standard library at import time: the signal handlers go in before anything slow is
# imported, so Ctrl-C (or a scheduler's SIGTERM) during start-up is one line, not a traceback
import argparse
import contextlib
import importlib
import logging
import signal
import sys
import warnings
from collections.abc import Callable, Sequence

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

# what `timeout` and batch schedulers (SLURM, PBS, LSF) send before killing a job, and what a
# closed terminal sends: handled like Ctrl-C, so every command's clean-up runs (no half-written
# file at a target name; training keeps its weights)
HANDLED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)
# third-party loggers that narrate every reader they try or every lenient repair they make; the
# errors that matter reach the user as one LabelFreeError line instead
QUIET_LOGGERS = ("bioio", "bioio_base", "bioio_ome_tiff", "bioio_tifffile", "tifffile")


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


class _Signals:
    """SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread (once), then are restored.

    ``received`` is the first signal number seen, for the exit status 128 + signal (130 for
    Ctrl-C, 143 for SIGTERM, 129 for SIGHUP), as shells report a process killed by a signal.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.received is not None:
            return  # a second signal must not cut the clean-up the first one started
        self.received = signum
        raise KeyboardInterrupt

    def install(self) -> None:
        for sig in HANDLED_SIGNALS:
            # outside the main thread (main() called from a worker) signals stay as they are
            with contextlib.suppress(ValueError, OSError):
                self._old[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, old in self._old.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, old)  # type: ignore[arg-type]
        self._old.clear()

    def exit_status(self) -> int:
        return 128 + (self.received or signal.SIGINT)

    def by(self) -> str:
        """ " by SIGTERM" for a signal, "" for Ctrl-C (which needs no naming)."""
        return f" by {signal.Signals(self.received).name}" if self.received else ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``labelfree`` with ``argv``; returns the exit status.

    0 on success, 2 for a mistake the user can fix (one line on stderr, no traceback), 128 +
    signal number when interrupted (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP), with
    nothing half-written left behind.
    """
    signals = _Signals()
    signals.install()
    command = "labelfree"
    try:
        try:
            from ..core.errors import LabelFreeError
            from ._args import with_hint

            parser = build_parser()
            args = parser.parse_args(argv)
        except KeyboardInterrupt:
            print(
                f"labelfree: interrupted{signals.by()} while starting; nothing was done",
                file=sys.stderr,
            )
            return signals.exit_status()
        command = f"labelfree {args.command}"
        status = _run(args, command, LabelFreeError, with_hint, signals)
        sys.stdout.flush()  # here, where a reader gone away is caught, not at exit
        return status
    except KeyboardInterrupt:  # between handlers: still one line
        print(f"{command}: interrupted{signals.by()}", file=sys.stderr)
        return signals.exit_status()
    except BrokenPipeError:
        # the reader of the output went away (`labelfree models | head`): stop quietly, as
        # command-line tools do, with the status of a process ended by SIGPIPE
        _discard_stdout()
        return 128 + 13
    finally:
        signals.restore()


def _discard_stdout() -> None:
    """Point stdout at /dev/null: Python's flush at exit would fail on the broken pipe again."""
    import os

    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _run(
    args: argparse.Namespace,
    command: str,
    error_type: type[Exception],
    with_hint: Callable,
    signals: _Signals,
) -> int:
    logging.basicConfig(level=logging.WARNING, format="labelfree: %(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # library deprecation chatter is for developers, not for someone running a batch job
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # torch's loader warns about the pickle protocol of a file it is about to refuse anyway
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.")
    try:
        return int(args.func(args) or 0)
    except error_type as e:
        message = with_hint(str(e), e.fields, getattr(args, "flag_hints", {}))  # type: ignore[attr-defined]
        print(f"{command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        # a command that keeps something on Ctrl-C (train saves its weights) says so in the message
        what = str(e) or "nothing half-written was kept"
        print(f"{command}: interrupted{signals.by()}; {what}", file=sys.stderr)
        return signals.exit_status()


if __name__ == "__main__":
    sys.exit(main())
