#!/usr/bin/env bash
# Issue #7's GPU measurements in one call of the lent machine (about 9 minutes on an H100):
# the speed ladder at batch 1024 (with torch.compile), then the quality sweep
# benchmarks/clinc150_h100.toml (router-threshold OOS for every row, seed repeats).
#
# Inputs travel with the checkout (runs/ is git-ignored; name these paths in `carry`):
#   runs/inputs/clinc150/{train,validation,test}.jsonl   CLINC150 as in ../shared/data
#   runs/inputs/minilm/                                    the base encoder (an fp16 copy fits
#                                                          the 64 MiB carry limit; weights load
#                                                          as fp32)
#   .whl/                                                  wheels for what the machine lacks
#                                                          (transformers < 4.58; staged by
#                                                          issue7_device_inputs.sh)
# Results go to $OUT (the device tool brings it back), or runs/issue7_out elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/issue7_out}
IN=${KDEDGE_INPUTS:-runs/inputs}
W=runs/clinc150
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
kd() { python3 -m kdedge "$@"; }
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers',
transformers.__version__, 'cuda', torch.cuda.is_available())" | tee "$OUT/versions.txt"

kd prepare "$IN/clinc150/train.jsonl" --validation "$IN/clinc150/validation.jsonl" \
  --test "$IN/clinc150/test.jsonl" --no-scrub --no-dedupe --out $W/data
kd teach --base "$IN/minilm" --data $W/data --out $W/teacher --epochs 10 --lr 1.5e-4 \
  --batch-size 64 --device cuda -q --json > "$OUT/teacher.json"
kd calibrate $W/teacher --data $W/data/validation.jsonl -q --json > "$OUT/teacher_calibration.json"
kd augment --data $W/data/train.jsonl --exclude $W/data/validation.jsonl \
  --exclude $W/data/test.jsonl --out $W/transfer_aug.jsonl --per-text 1

# From here on a failing stage is logged and the next one still runs: device time is scarce.
python3 benchmarks/train_speed.py --teacher $W/teacher --data $W/data --device cuda \
  --batch-size 1024 --steps 50 --rounds 7 --compile reduce-overhead --label-texts 23695 \
  --label-batch-size 2048 --out "$OUT/train_speed_h100.json" 2>&1 \
  | tee "$OUT/train_speed.log" || echo "train_speed FAILED"
# The sweep saves each finished student under runs/sweep_h100/results as it goes and writes
# the report at the end; it is stopped in time for whatever exists to be copied to $OUT
# (BUDGET_S: the call's limit, less a margin for the copy).
left=$(( ${BUDGET_S:-580} - SECONDS ))
(timeout "$left" python3 -m kdedge sweep benchmarks/clinc150_h100.toml --device cuda -q 2>&1 \
  | tee "$OUT/sweep.log") || echo "sweep FAILED or stopped after ${left}s"
cp -r runs/sweep_h100/results "$OUT/sweep_results" 2>/dev/null || true
cp runs/sweep_h100/sweep_report.* "$OUT/" 2>/dev/null || true
