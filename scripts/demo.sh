#!/usr/bin/env bash
# Set up (idempotent), then run the main job on built-in defaults: `labelfree demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/labelfree demo "$@"
