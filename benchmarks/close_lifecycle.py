"""Closing napari while the plugin's workers run: does the process exit cleanly, every time?

Each try is a fresh Python process, as a user's napari session: it opens a viewer, does one
thing, closes the viewer while the plugin's worker is still busy, and exits. A try passes when
the exit status is 0, nothing on stderr is a traceback or an abort, and (mid-training) no model
folder is left behind. Run under an X server (Xvfb; xvfb-run is used when DISPLAY is unset):

    python benchmarks/close_lifecycle.py                 # 20 tries of each scenario
    python benchmarks/close_lifecycle.py --tries 3 --scenario dock train

Scenarios: ``dock`` (dock both widgets, close at once: the device probe is importing torch),
``sample`` (close while the sample is simulated), ``train`` (close mid-training), ``predict``
(close mid-prediction). ``tests/widgets/test_lifecycle_close.py`` runs a few tries of each.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "widgets"))
from lifecycle_close import SCENARIOS, run_try  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per try")
    parser.add_argument("--scenario", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min average)")
    failed = 0
    sys.stdout.reconfigure(line_buffering=True)  # each line as it comes, also into a file
    for scenario in args.scenario:
        passed, times = 0, []
        for i in range(args.tries):
            ok, why, took = run_try(scenario, args.timeout)
            passed += ok
            times.append(took)
            if not ok:
                print(f"  {scenario} try {i + 1}: FAILED: {why}")
        failed += args.tries - passed
        print(
            f"{scenario}: {passed} of {args.tries} tries exited cleanly "
            f"(median {sorted(times)[len(times) // 2]:.1f} s per try)",
            flush=True,
        )
    print(f"load after: {os.getloadavg()[0]:.2f}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
