"""Per-target benchmarks: latency, cold start, memory and accuracy for every artifact.

``targets`` says what a hardware target is (data, not code), ``host`` records the machine,
``worker`` measures one artifact in its own process, ``harness`` runs the matrix,
``paired`` turns interleaved rounds into speed-ups with intervals, ``explain`` reads INT8 vs
FP32 against the CPU's flags, ``record`` keeps figures in the bundle for selection.
"""
