"""Converter tests share the nine-format export of the tiny teacher (tests/conftest.py)."""
