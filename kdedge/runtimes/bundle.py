"""The bundle: a directory of verified artifacts described by a versioned ``manifest.json``.

A bundle is what a release engineer ships and what an app loads. It holds the tokenizer
(``tokenizer.json``, read by the ``tokenizers`` library), one sub-directory per artifact,
and the manifest: labels, max length, calibration temperature, router defaults, and for
every artifact its files with sha256 and size plus the parity evidence gathered at export.

Reading a bundle never unpickles anything: the manifest is JSON, artifacts are ONNX,
OpenVINO IR or GGUF, and file names that could hold a pickle are refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from kdedge import jsonout
from kdedge.errors import BundleError, ModelError
from kdedge.runtimes import manifest_fields as check

MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.json"
SCHEMA_VERSION = 1
KIND = "kdedge-bundle"
# Formats whose loaders may execute code when reading: never shipped, never loaded.
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".joblib", ".npy")
ARTIFACT_STATUSES = ("passed", "failed")
MAX_LENGTH_LIMIT = 1 << 20  # tokens; far above any model kdedge exports
_SHA256 = re.compile(r"[0-9a-f]{64}")
PARITY_FIGURES = ("latency_ms_p50", "tokens_per_s", "accuracy_drop_points")
BENCH_FIGURES = ("p50_ms", "tg_tokens_per_s")
_OPTIONAL_TABLES = ("router", "gates", "provenance", "selection", "generation", "benchmarks")


# -- the manifest schema (field checks: kdedge.runtimes.manifest_fields) ---------------


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileEntry:
    """One file of a bundle, relative to the bundle root (POSIX separators)."""

    path: str
    sha256: str
    bytes: int

    def __post_init__(self) -> None:
        check.text(self.path, "path")
        if "\x00" in self.path or "\\" in self.path:
            raise check.bad("path", "a POSIX path (no NUL, no backslash)", self.path)
        if not isinstance(self.sha256, str) or not _SHA256.fullmatch(self.sha256):
            raise check.bad("sha256", "64 lowercase hex digits", self.sha256)
        check.integer(self.bytes, "bytes", 0)

    @classmethod
    def of(cls, root: Path, relative: str) -> FileEntry:
        full = root / relative
        return cls(relative, sha256_file(full), full.stat().st_size)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FileEntry:
        return cls(
            check.get(d, "path", "path"),
            check.get(d, "sha256", "sha256"),
            check.get(d, "bytes", "bytes"),
        )


@dataclass(frozen=True)
class Artifact:
    """One exported model: a format the runtime has a backend for, with its evidence."""

    name: str  # the export format, e.g. "onnx-int8"
    format: str  # onnx | openvino | gguf
    precision: str  # fp32 | fp16 | int8 | q8_0 | q4_k_m ...
    backend: str  # onnxruntime | openvino | llamacpp
    files: tuple[FileEntry, ...]
    status: str = "passed"  # passed | failed (kept only when the user asked to keep it)
    target_hints: tuple[str, ...] = ()
    parity: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check.tuples(self, "files", "target_hints")
        for key in ("name", "format", "precision", "backend"):
            check.text(getattr(self, key), key)
        if not isinstance(self.files, tuple) or not self.files:
            raise check.bad("files", "a non-empty list of files", self.files)
        for i, entry in enumerate(self.files):
            if not isinstance(entry, FileEntry):
                raise check.bad(f"files[{i}]", "a file entry", entry)
        if len({f.path for f in self.files}) != len(self.files):
            raise check.bad("files", "a list of distinct paths", [f.path for f in self.files])
        if self.status not in ARTIFACT_STATUSES:
            raise check.bad("status", " or ".join(map(repr, ARTIFACT_STATUSES)), self.status)
        check.texts(self.target_hints, "target_hints")
        check.table(self.parity, "parity")
        check.table(self.details, "details")
        for key in PARITY_FIGURES:  # what artifact selection ranks by
            check.figure(self.parity.get(key), f"parity.{key}")

    @property
    def size_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def main_file(self) -> str:
        """The file a backend opens (.onnx, .xml or .gguf); the others are its companions."""
        return self.files[0].path

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["files"] = [asdict(f) for f in self.files]
        d["size_bytes"] = self.size_bytes
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Artifact:
        files = check.get(d, "files", "files")
        if not isinstance(files, list) or not files:
            raise check.bad("files", "a non-empty list of files", files)
        entries = []
        for i, f in enumerate(files):
            check.table(f, f"files[{i}]")
            with check.within(f"files[{i}]"):
                entries.append(FileEntry.from_dict(f))
        return cls(
            name=check.get(d, "name", "name"),
            format=check.get(d, "format", "format"),
            precision=check.get(d, "precision", "precision"),
            backend=check.get(d, "backend", "backend"),
            files=tuple(entries),
            status=d.get("status", "passed"),
            target_hints=check.texts(d.get("target_hints", []), "target_hints"),
            parity=check.table(d.get("parity", {}), "parity"),
            details=check.table(d.get("details", {}), "details"),
        )


@dataclass(frozen=True)
class Manifest:
    """Everything an app needs to run a bundle, and the evidence that it is safe to."""

    task: str
    labels: tuple[str, ...]
    max_length: int
    temperature: float
    artifacts: tuple[Artifact, ...]
    tokenizer: FileEntry
    inputs: tuple[str, ...] = ("input_ids", "attention_mask")
    router: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    gates: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)
    # task "generate": system_prompt, user_template, chat_template, context_length,
    # max_new_tokens, stop, eos_token (absent from classifier manifests)
    generation: dict[str, Any] = field(default_factory=dict)
    # `kdedge bench --apply`: per target, when and where it was measured and each
    # artifact's figures (p50_ms / p95_ms, or a generator's tg_tokens_per_s; cold start, RSS)
    benchmarks: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        check.tuples(self, "labels", "artifacts", "inputs")
        check.integer(self.schema_version, "schema_version", 1, SCHEMA_VERSION)
        check.text(self.task, "task")
        check.texts(self.labels, "labels")
        seen: set[str] = set()
        for label in self.labels:
            if label in seen:
                detail = f"must list each label once; {label!r} appears twice"
                raise BundleError(f"field 'labels' {detail}", field="labels", detail=detail)
            seen.add(label)
        if self.task == "intent" and len(self.labels) < 2:
            raise check.bad(
                "labels", "at least 2 labels for an intent classifier", list(self.labels)
            )
        check.integer(self.max_length, "tokenizer.max_length", 1, MAX_LENGTH_LIMIT)
        check.positive(self.temperature, "calibration.temperature")
        if not isinstance(self.tokenizer, FileEntry):
            raise check.bad("tokenizer", "a file entry", self.tokenizer)
        check.texts(self.inputs, "inputs", allow_empty=False)
        if not isinstance(self.artifacts, tuple) or not self.artifacts:
            raise check.bad("artifacts", "a non-empty list of artifacts", self.artifacts)
        names: set[str] = set()
        for i, a in enumerate(self.artifacts):
            if not isinstance(a, Artifact):
                raise check.bad(f"artifacts[{i}]", "an artifact", a)
            if a.name in names:
                raise check.bad(f"artifacts[{i}].name", "unique among the artifacts", a.name)
            names.add(a.name)
        for key in ("calibration", *_OPTIONAL_TABLES):
            check.table(getattr(self, key), key)
        for target, run in self.benchmarks.items():  # what artifact selection ranks by
            figures = check.table(
                check.table(run, f"benchmarks.{target}").get("artifacts", {}),
                f"benchmarks.{target}.artifacts",
            )
            for name, row in figures.items():
                where = f"benchmarks.{target}.artifacts.{name}"
                for key in BENCH_FIGURES:
                    check.figure(check.table(row, where).get(key), f"{where}.{key}")

    def artifact(self, name: str) -> Artifact:
        for a in self.artifacts:
            if a.name == name:
                return a
        known = ", ".join(a.name for a in self.artifacts) or "none"
        raise ModelError(f"the bundle has no artifact '{name}'; it has: {known}")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": KIND,
            "schema_version": self.schema_version,
            "task": self.task,
            "labels": list(self.labels),
            "tokenizer": {**asdict(self.tokenizer), "max_length": self.max_length},
            "inputs": list(self.inputs),
            "calibration": {"temperature": self.temperature, **self.calibration},
            "router": self.router,
            "artifacts": [a.to_dict() for a in self.artifacts],
            "selection": self.selection,
            "gates": self.gates,
            "provenance": self.provenance,
        }
        if self.generation:
            d["generation"] = self.generation
        if self.benchmarks:
            d["benchmarks"] = self.benchmarks
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = MANIFEST) -> Manifest:
        if not isinstance(d, dict):
            raise BundleError(f"{where} is not a JSON object; the bundle is damaged")
        if d.get("kind") != KIND:
            raise ModelError(f"{where} is not a kdedge bundle manifest (kind={d.get('kind')!r})")
        version = d.get("schema_version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise BundleError(
                f"{where}: field 'schema_version' must be an integer >= 1, got {version!r}; "
                "the manifest is damaged",
                field="schema_version",
            )
        if version > SCHEMA_VERSION:
            raise ModelError(
                f"{where} uses bundle schema v{version}, newer than this kdedge reads "
                f"(v{SCHEMA_VERSION}). Fix: pip install -U kdedge"
            )
        try:
            return cls._parse(d, version)
        except BundleError as exc:
            raise BundleError(
                f"{where}: {exc}; the manifest is damaged or was edited by hand. "
                "Fix: copy the bundle again or re-export it with `kdedge export`",
                field=exc.field,
                detail=exc.detail,
            ) from None

    @classmethod
    def _parse(cls, d: dict[str, Any], version: int) -> Manifest:
        labels = check.get(d, "labels", "labels")
        if not isinstance(labels, list):  # a string would be read as its characters
            raise check.bad("labels", "a JSON array of strings", labels)
        tok = check.table(check.get(d, "tokenizer", "tokenizer"), "tokenizer")
        with check.within("tokenizer"):
            tokenizer = FileEntry.from_dict(tok)
        calibration = dict(check.table(d.get("calibration", {}), "calibration"))
        artifacts = check.get(d, "artifacts", "artifacts")
        if not isinstance(artifacts, list) or not artifacts:
            raise check.bad("artifacts", "a non-empty list of artifacts", artifacts)
        parsed = []
        for i, a in enumerate(artifacts):
            check.table(a, f"artifacts[{i}]")
            with check.within(f"artifacts[{i}]"):
                parsed.append(Artifact.from_dict(a))
        inputs = d.get("inputs", ["input_ids", "attention_mask"])
        tables = {key: check.table(d.get(key, {}), key) for key in _OPTIONAL_TABLES}
        return cls(
            task=check.text(check.get(d, "task", "task"), "task"),
            labels=check.texts(labels, "labels"),
            max_length=check.get(tok, "max_length", "tokenizer.max_length"),
            temperature=check.positive(
                calibration.pop("temperature", 1.0), "calibration.temperature"
            ),
            artifacts=tuple(parsed),
            tokenizer=tokenizer,
            inputs=check.texts(inputs, "inputs", allow_empty=False),
            calibration=calibration,
            schema_version=version,
            **{key: dict(value) for key, value in tables.items()},
        )


def _check_relative(root: Path, relative: str) -> Path:
    """Resolve a manifest path, refusing absolute paths, '..' and pickle-capable files."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise ModelError(f"{root / MANIFEST}: file path {relative!r} escapes the bundle; refusing")
    if relative.lower().endswith(PICKLE_SUFFIXES):
        raise ModelError(
            f"{root / MANIFEST}: {relative!r} is a pickle-capable file; kdedge never loads those"
        )
    return root.joinpath(*pure.parts)


def verify_file(root: Path, entry: FileEntry) -> Path:
    """Check that a bundle file exists with the recorded size and sha256; return its path."""
    path = _check_relative(root, entry.path)
    if not path.is_file():
        raise ModelError(f"{path} is missing from the bundle; re-export it with `kdedge export`")
    size = path.stat().st_size
    if size != entry.bytes:
        raise ModelError(
            f"{path} is {size} bytes but the manifest says {entry.bytes}: truncated or replaced. "
            "Fix: copy the bundle again or re-export it"
        )
    if sha256_file(path) != entry.sha256:
        raise ModelError(
            f"{path} does not match its sha256 in the manifest: corrupted or modified. "
            "Fix: copy the bundle again or re-export it"
        )
    return path


def read_manifest(bundle: str | Path) -> Manifest:
    """Parse and validate ``manifest.json`` (no file hashes checked; see :func:`load_bundle`)."""
    root = Path(bundle)
    path = root / MANIFEST
    if not root.is_dir():
        raise ModelError(f"bundle {root} is not a directory; pass the folder `kdedge export` wrote")
    if not path.is_file():
        raise ModelError(f"{root} has no {MANIFEST}: not a kdedge bundle (or an unfinished export)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        raise ModelError(f"{path} is not valid JSON ({exc}); the bundle is damaged") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object; the bundle is damaged")
    manifest = Manifest.from_dict(data, str(path))
    for entry in (manifest.tokenizer, *(f for a in manifest.artifacts for f in a.files)):
        _check_relative(root, entry.path)
    return manifest


def load_bundle(bundle: str | Path, *, artifacts: list[str] | None = None) -> Manifest:
    """Read the manifest and verify the tokenizer and artifact files against their hashes.

    ``artifacts`` limits the check to the named artifacts (a runtime verifies only what it
    loads); ``None`` verifies all of them.
    """
    manifest = read_manifest(bundle)
    verify_files(bundle, manifest, artifacts)
    return manifest


def verify_files(
    bundle: str | Path, manifest: Manifest, artifacts: list[str] | None = None
) -> None:
    """Check the tokenizer and the named artifacts' files (all when ``None``) against the
    sizes and hashes of an already-read manifest."""
    root = Path(bundle)
    verify_file(root, manifest.tokenizer)
    for a in manifest.artifacts:
        if artifacts is None or a.name in artifacts:
            for f in a.files:
                verify_file(root, f)


def write_manifest(bundle: str | Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` atomically (temp file, fsync, rename)."""
    from kdedge.atomic import atomic_write_text

    path = Path(bundle) / MANIFEST
    text = jsonout.dumps(manifest.to_dict(), indent=2, ensure_ascii=False)
    atomic_write_text(path, text + "\n")
    return path


def relative(root: Path, path: Path) -> str:
    """A bundle-relative POSIX path for a file under ``root``."""
    return PurePosixPath(os.path.relpath(path, root)).as_posix()
