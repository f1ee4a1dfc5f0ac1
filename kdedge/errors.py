"""One error family for everything a user can fix.

Every message says what failed, the offending value (file and line for data), and the fix.
The CLI prints a :class:`KdedgeError` on one line and exits with status 2; anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class KdedgeError(Exception):
    """Root of all user-facing kdedge errors."""


class ConfigError(KdedgeError):
    """A recipe, gate file or option is invalid."""


class DeviceError(KdedgeError):
    """The requested compute device is not available here."""


class DistributedError(KdedgeError):
    """A multi-process run was launched wrongly, or a peer process died or stalled."""


class ModelError(KdedgeError):
    """A model directory or artifact is missing, incomplete or corrupted."""


class BundleError(ModelError):
    """A bundle's manifest is malformed: a field of the wrong type or out of range.

    The message names the field (``tokenizer.max_length``, ``artifacts[2].files``, ...). A
    subclass of :class:`ModelError`, so ``except ModelError`` still catches it.
    """

    def __init__(self, message: str, *, field: str | None = None, detail: str = "") -> None:
        self.field = field
        self.detail = detail  # the message without "field '...'", to re-prefix the field
        super().__init__(message)


class DataError(KdedgeError):
    """A data file is malformed. Carries the file, line and field when known."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path}:{line}"
            where += ": "
        if field is not None:
            where += f"field '{field}': "
        super().__init__(f"{where}{message}")


class MissingDependencyError(KdedgeError):
    """An optional dependency is missing; the message names the extra that installs it."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            f"{purpose} needs the Python package '{module}', which is not installed. "
            f"Fix: pip install 'kdedge[{extra}]'"
        )
