#!/usr/bin/env bash
# Build the stand-in bundle that benchmarks/runtime.py times in docs/benchmarks.md: the
# CLINC150 student's shape (3 MiniLM layers, 151 labels, onnx-int8) in a few minutes on a
# CPU, trained on 8 rows per label. Its accuracy is beside the point; its
# size, tokenizer and graph are what a real CLINC150 student serves with.
#
#   benchmarks/runtime_standin.sh /tmp/standin      # then --bundle /tmp/standin/bundle
set -euo pipefail
out=${1:?usage: runtime_standin.sh OUT_DIR}
data=${KDEDGE_CLINC150:-"$(dirname "$0")/../../shared/data/clinc150"}
mkdir -p "$out/raw"

# the first N rows of every label of one split
take() {
  python - "$1" "$2" <<'EOF'
import json, sys
from collections import Counter
seen = Counter()
for line in open(sys.argv[1], encoding="utf-8"):
    row = json.loads(line)
    if seen[row["label"]] < int(sys.argv[2]):
        seen[row["label"]] += 1
        print(json.dumps(row))
EOF
}
take "$data/train.jsonl" 8 >"$out/raw/train.jsonl"
take "$data/validation.jsonl" 2 >"$out/raw/validation.jsonl"
take "$data/test.jsonl" 2 >"$out/raw/test.jsonl"

kdedge prepare "$out/raw/train.jsonl" --validation "$out/raw/validation.jsonl" \
  --test "$out/raw/test.jsonl" --no-scrub --no-dedupe --out "$out/data"
kdedge teach --base minilm --data "$out/data" --out "$out/teacher" --epochs 10 --lr 3e-4 --overwrite
kdedge label --teacher "$out/teacher" --data "$out/data"
kdedge distill --teacher "$out/teacher" --data "$out/data" --out "$out/student" \
  --layers 3 --epochs 6 --lr 5e-4 --overwrite
# the probe set is out-of-domain for so short a training: argmax agreement can miss its gate
kdedge export "$out/student" -f onnx-int8 --out "$out/bundle" --keep-failed --overwrite
