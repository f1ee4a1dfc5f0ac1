"""Why a quantized artifact is (or is not) faster than FP32 on a given CPU, in words.

Whether INT8 pays off on a CPU is decided mostly by one instruction-set feature. With
VNNI (``avx512_vnni``, ``avx_vnni``) one instruction multiplies four u8 x s8 pairs and adds
them into a 32-bit sum; AMX (``amx_int8``) does whole tiles at a time; Arm's dot-product
extension (``asimddp``) does the same for Arm. Without them an INT8 dot product costs three
AVX2/AVX-512 instructions and passes through a saturating 16-bit intermediate, so INT8
often gains little, or loses against FP32 once quantizing activations is paid for, and its
outputs can drift. Each note states the measured speed-up, the flags the target's kernels
could use, and the reading that follows from them; the ``intel-cpu-avx2`` /
``intel-cpu-avx512`` targets give the no-VNNI evidence on a CPU that has VNNI.
"""

from __future__ import annotations

from typing import Any

DOT_PRODUCT_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni", "asimddp")


def effective_flags(report: dict[str, Any], target: str) -> list[str]:
    """The CPU flags the target's kernels may use: the host's, capped by the target."""
    host = list(report["host"].get("cpu_flags") or [])
    isa = report["targets"].get(target, {}).get("isa")
    return [f for f in host if f in isa] if isa else host


def _speedups(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Quantized-vs-FP32 speed-ups: the interleaved ones, else from the sequential p50s of
    the same pairs the harness compares."""
    from kdedge.bench.harness import Row, comparisons

    found = [
        p for p in report.get("paired", []) if p.get("comparison") == "precision" and "speedup" in p
    ]
    seen = {(p["target"], p["row"]) for p in found}
    rows = [Row(**r) for r in report["rows"]]
    for row, base, kind in comparisons(rows):
        if kind != "precision" or (row.target, row.name) in seen:
            continue
        if row.batch_1 and base.batch_1:
            found.append(
                {
                    "target": row.target,
                    "row": row.name,
                    "reference": base.name,
                    "speedup": round(base.batch_1["p50"] / row.batch_1["p50"], 3),
                    "verdict": "sequential rows only",
                }
            )
    return found


def quantization_notes(report: dict[str, Any]) -> list[str]:
    """One sentence or two per quantized artifact and target (empty for generators)."""
    notes = []
    for s in _speedups(report):
        flags = effective_flags(report, s["target"])
        dot = [f for f in DOT_PRODUCT_FLAGS if f in flags]
        speed = s["speedup"]
        how = (
            f"95% CI {s['ci95'][0]:.3f}-{s['ci95'][1]:.3f}, interleaved"
            if "ci95" in s
            else s["verdict"]
        )
        head = (
            f"{s['target']}: {s['row']} is {speed:.2f}x the speed of {s['reference']} ({how}); "
            f"kernels may use {', '.join(flags) or 'no listed SIMD flags'}."
        )
        faster = s.get("verdict") == "faster" or ("ci95" not in s and speed > 1.1)
        slower = s.get("verdict") == "slower" or ("ci95" not in s and speed < 0.9)
        if dot and faster:
            why = (
                f"Expected: {dot[0]} gives INT8 dot products in one instruction, so the "
                "quantized matrix multiplies outrun FP32."
            )
        elif dot and slower:
            why = (
                f"{dot[0]} is present, so the instruction set is not the cause: at this "
                "size the quantize/dequantize steps around small matrix multiplies cost "
                "more than they save (compare at the larger batch)."
            )
        elif dot:
            why = f"{dot[0]} is present; the gain is too small to tell apart from noise here."
        elif slower or not faster:
            why = (
                "Expected without VNNI/AMX/dot-product: an INT8 dot product takes three "
                "instructions through a saturating 16-bit step, so it does not beat FP32 "
                "FMA and quantizing activations is pure overhead. Ship FP32 to such CPUs."
            )
        else:
            why = (
                "Faster even without VNNI: smaller weights move less memory, which can "
                "outweigh the slower INT8 arithmetic; check accuracy on such CPUs, as the "
                "saturating 16-bit step can change outputs."
            )
        notes.append(f"{head} {why}")
    return notes
