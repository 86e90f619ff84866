#!/usr/bin/env bash
# Everything a lent GPU machine is asked for, in one call (about 9 minutes on an H100):
# the built-in models retrained on the GPU (scripts/train_builtin_models.py), then the training
# speed table (gpu_train.py) and every prediction figure (gpu_report.py). Installs nothing: runs
# the source tree with the machine's own PyTorch; each step has its own time limit so that one
# slow step cannot take the others' results with it. Output: $OUT/*.log and $OUT/models.tgz.
#
#   OUT=/tmp/out bash benchmarks/gpu_session.sh        # OUT: where logs and models go
set -u
OUT=${OUT:?set OUT to a folder for the logs and models}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.log"
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.log"

# candidates on the shipped built-ins' recipe (clean + domain-randomized fields, half of those phase
# contrast); they replace a shipped model only after the rule in docs/models.md (--evaluate)
models=/tmp/labelfree-builtin-models
mkdir -p "$models"
timeout "${BUILTIN_S:-270}" $py scripts/train_builtin_models.py --device cuda --threads 8 \
    --randomized --clean-fields 16 --phase-contrast-share 0.5 \
    --iterations "${BUILTIN_ITERATIONS:-2500}" --batch-size 16 --train-fields 16 \
    --out "$models" 2>&1 | tee "$OUT/builtin.log"
tar czf "$OUT/models.tgz" -C "$models" .   # the models that finished, even after a time-out

timeout 100 $py benchmarks/gpu_train.py --iterations 110 --warmup 10 2>&1 | tee "$OUT/train.log"
timeout 200 $py benchmarks/gpu_report.py --skip-train --skip-compile --budget 190 --json "$OUT/report.json" 2>&1 | tee "$OUT/report.log"
