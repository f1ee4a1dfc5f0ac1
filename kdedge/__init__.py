"""kdedge: distill a big teacher into a small, calibrated, gated student and ship it to the edge.

The package is split by component; heavy dependencies are imported only inside the
component that needs them, so ``import kdedge`` stays cheap and torch-free.
"""

from kdedge.errors import KdedgeError

__version__ = "0.1.0"
__all__ = ["KdedgeError", "__version__"]
