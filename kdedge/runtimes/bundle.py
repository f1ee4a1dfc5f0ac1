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
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from kdedge.errors import ModelError

MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.json"
SCHEMA_VERSION = 1
KIND = "kdedge-bundle"
# Formats whose loaders may execute code when reading: never shipped, never loaded.
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".joblib", ".npy")


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

    @classmethod
    def of(cls, root: Path, relative: str) -> FileEntry:
        full = root / relative
        return cls(relative, sha256_file(full), full.stat().st_size)


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
        return cls(
            name=d["name"],
            format=d["format"],
            precision=d["precision"],
            backend=d["backend"],
            files=tuple(FileEntry(f["path"], f["sha256"], int(f["bytes"])) for f in d["files"]),
            status=d.get("status", "passed"),
            target_hints=tuple(d.get("target_hints", ())),
            parity=dict(d.get("parity", {})),
            details=dict(d.get("details", {})),
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
        if d.get("kind") != KIND:
            raise ModelError(f"{where} is not a kdedge bundle manifest (kind={d.get('kind')!r})")
        version = d.get("schema_version")
        if not isinstance(version, int):
            raise ModelError(f"{where} has no integer schema_version; the manifest is damaged")
        if version > SCHEMA_VERSION:
            raise ModelError(
                f"{where} uses bundle schema v{version}, newer than this kdedge reads "
                f"(v{SCHEMA_VERSION}). Fix: pip install -U kdedge"
            )
        try:
            tok = d["tokenizer"]
            calibration = dict(d.get("calibration", {}))
            return cls(
                task=d["task"],
                labels=tuple(d["labels"]),
                max_length=int(tok["max_length"]),
                temperature=float(calibration.pop("temperature", 1.0)),
                artifacts=tuple(Artifact.from_dict(a) for a in d["artifacts"]),
                tokenizer=FileEntry(tok["path"], tok["sha256"], int(tok["bytes"])),
                inputs=tuple(d.get("inputs", ("input_ids", "attention_mask"))),
                router=dict(d.get("router", {})),
                calibration=calibration,
                gates=dict(d.get("gates", {})),
                provenance=dict(d.get("provenance", {})),
                selection=dict(d.get("selection", {})),
                generation=dict(d.get("generation", {})),
                benchmarks=dict(d.get("benchmarks", {})),
                schema_version=version,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{where} is missing or has a malformed field: {exc}") from exc


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
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path} is not valid JSON ({exc}); the bundle is damaged") from exc
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
    atomic_write_text(path, json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return path


def relative(root: Path, path: Path) -> str:
    """A bundle-relative POSIX path for a file under ``root``."""
    return PurePosixPath(os.path.relpath(path, root)).as_posix()
