"""The embeddable runtime: torch-free inference over an exported kdedge bundle.

This package must never import torch, transformers, optimum, click or rich
(``tests/test_imports.py`` enforces it in a fresh interpreter). The backends, bundle
loader and router land here with the converters and runtime work; today it only fixes
the import contract that they will be written against.
"""

__all__: list[str] = []
