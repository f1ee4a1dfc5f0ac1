#!/usr/bin/env bash
# Stage what benchmarks/issue7_device.sh needs on the lent GPU machine, which reaches no
# network and receives only the checkout (64 MiB at most): CLINC150, an fp16 copy of the
# base encoder (43 MiB instead of 87) and wheels of the transformers range kdedge supports
# (the machine's image has transformers 5, huggingface_hub 1 and tokenizers 0.23). Then:
#   run(command="bash benchmarks/issue7_device.sh", carry=["runs/inputs", ".whl"])
set -euo pipefail
cd "$(dirname "$0")/.."
IN=runs/inputs
mkdir -p "$IN/clinc150" .whl
cp ../shared/data/clinc150/{train,validation,test}.jsonl "$IN/clinc150/"
python3 - "$IN/minilm" <<'PY'
import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoModel

from kdedge.pipeline import resolve_model

src, dst = resolve_model("minilm"), Path(sys.argv[1])
AutoModel.from_pretrained(src, dtype=torch.float16).save_pretrained(dst)
for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
    shutil.copy(Path(src) / name, dst / name)
PY
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl \
  transformers==4.57.6 tokenizers==0.22.1 huggingface_hub==0.36.0
du -ch "$IN" .whl | tail -1
