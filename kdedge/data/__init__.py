"""Data: loading with file:line validation, PII scrub, dedupe, stratified splits, label sets."""

from kdedge.data.clean import (
    DedupeResult,
    ScrubResult,
    dedupe,
    normalize_text,
    scrub_pii,
    scrub_text,
)
from kdedge.data.io import check_labels, load_examples, write_examples
from kdedge.data.labels import LabelSet
from kdedge.data.prepare import PreparedData, PrepareReport, load_prepared, prepare_dataset
from kdedge.data.records import Example
from kdedge.data.split import stratified_split

__all__ = [
    "DedupeResult",
    "Example",
    "LabelSet",
    "PrepareReport",
    "PreparedData",
    "ScrubResult",
    "check_labels",
    "dedupe",
    "load_examples",
    "load_prepared",
    "normalize_text",
    "prepare_dataset",
    "scrub_pii",
    "scrub_text",
    "stratified_split",
    "write_examples",
]
