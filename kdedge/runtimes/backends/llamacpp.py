"""llama.cpp backend (llama-cpp-python) for GGUF classifiers: RANK pooling, one sequence
per call into the context, guarded by a lock (a llama.cpp context is not thread-safe).

Run as a module it is also the subprocess worker the exporter uses, because llama.cpp
aborts the whole process on a GGUF it rejects::

    python -m kdedge.runtimes.backends.llamacpp quantize IN.gguf OUT.gguf Q8_0
    python -m kdedge.runtimes.backends.llamacpp logits MODEL.gguf < ids.json > logits.json
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from kdedge.errors import ModelError
from kdedge.extras import require


class LlamaCppBackend:
    name = "llamacpp"

    def __init__(self, path: Path, *, threads: int | None = None, n_ctx: int = 512) -> None:
        lc = require("llama_cpp", "llamacpp", "Running GGUF artifacts")
        self._lc = lc
        try:
            self._llm = lc.Llama(
                model_path=str(path),
                embedding=True,
                pooling_type=lc.LLAMA_POOLING_TYPE_RANK,
                n_ctx=n_ctx,
                n_batch=n_ctx,
                n_ubatch=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
        except ValueError as exc:  # llama-cpp-python's "Failed to load model from file"
            raise ModelError(f"llama.cpp cannot load {path}: {exc}") from exc
        self.n_labels = lc.llama_model_n_cls_out(self._llm.model)
        if self.n_labels <= 0:
            raise ModelError(f"{path} has no classifier head (cls.output); not a kdedge GGUF")
        self.n_ctx = n_ctx
        self._lock = threading.Lock()

    def _one(self, ids: list[int]) -> np.ndarray:
        lc, ctx = self._lc, self._llm.ctx
        if len(ids) > self.n_ctx:
            raise ModelError(f"{len(ids)} tokens exceed the llama.cpp context of {self.n_ctx}")
        batch = lc.llama_batch_init(len(ids), 0, 1)
        try:
            batch.n_tokens = len(ids)
            for i, token in enumerate(ids):
                batch.token[i] = token
                batch.pos[i] = i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = True
            lc.llama_memory_clear(lc.llama_get_memory(ctx), True)
            if lc.llama_encode(ctx, batch) != 0:
                raise ModelError("llama.cpp failed to encode the sequence")
            ptr = lc.llama_get_embeddings_seq(ctx, 0)
            if not ptr:
                raise ModelError("llama.cpp returned no pooled output (RANK pooling missing?)")
            return np.ctypeslib.as_array(
                ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(self.n_labels,)
            ).copy()
        finally:
            lc.llama_batch_free(batch)

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        pairs = zip(input_ids, attention_mask, strict=True)
        rows = [row[mask.astype(bool)].tolist() for row, mask in pairs]
        with self._lock:
            return np.stack([self._one(r) for r in rows]).astype(np.float32)


def run_worker(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run this module's command line in a fresh interpreter, so that a llama.cpp abort
    ends that process and not the caller's."""
    return subprocess.run(
        [sys.executable, "-m", "kdedge.runtimes.backends.llamacpp", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def _quantize(source: str, target: str, ftype: str) -> int:
    lc = require("llama_cpp", "llamacpp", "Quantizing GGUF files")
    params = lc.llama_model_quantize_default_params()
    params.ftype = getattr(lc, f"LLAMA_FTYPE_MOSTLY_{ftype.upper()}")
    return int(lc.llama_model_quantize(source.encode(), target.encode(), ctypes.byref(params)))


def main(argv: list[str]) -> int:
    if argv[:1] == ["quantize"] and len(argv) == 4:
        return _quantize(*argv[1:])
    if argv[:1] == ["logits"] and len(argv) == 2:
        ids = json.load(sys.stdin)
        backend = LlamaCppBackend(Path(argv[1]), n_ctx=max(8, max(len(r) for r in ids)))
        out = [backend._one(r).tolist() for r in ids]
        json.dump({"logits": out, "n_labels": backend.n_labels}, sys.stdout)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
