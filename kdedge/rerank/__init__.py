"""Reranking: distill a cross-encoder teacher into a small cross-encoder student.

A query comes with a list of candidate passages (``kdedge.rerank.data``), usually found by a
cheap first stage (``kdedge.rerank.retrieval``: BM25); the reranker scores each pair and the
list is judged by ranking metrics (``kdedge.rerank.metrics``: NDCG, MRR, recall, agreement).

This package imports nothing at import time: ``kdedge.rerank.metrics`` and
``kdedge.rerank.data`` need only numpy, so the torch-free runtime can use them.
"""
