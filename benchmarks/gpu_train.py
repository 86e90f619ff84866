"""Training iterations/s on a GPU at the paper's settings (goal on an H100: >= 40 it/s).

Same as ``train_speed.py`` with the device defaulting to CUDA: installs nothing, prints one
table (the plain reference loop, this trainer reading the loss every step, and as it runs by
default); about a minute on an H100::

    python benchmarks/gpu_train.py --iterations 110 --warmup 10
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import main  # noqa: E402

if __name__ == "__main__":
    main(default_device="cuda")
