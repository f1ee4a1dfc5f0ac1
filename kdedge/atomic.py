"""Write files so that no reader sees half of one: temp name in the same folder, then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Yield a file handle; on success the file appears at ``path`` in one rename.

    On any exception the temp file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give what open() would
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_write(path) as handle:
        handle.write(text)


STALE_GRACE_S = 300.0
"""A dead exporter's staging folder is swept only once nothing in it changed for this long."""
LEGACY_STALE_S = 3600.0
"""Untagged staging folders (older kdedge versions) are swept after this long unchanged."""
_RANDOM = r"[a-z0-9_]{8}"  # tempfile's random part


def _host() -> str:
    """8 hex digits naming this machine in staging-folder names."""
    import hashlib
    import socket

    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (another user's counts as alive)."""
    if pid <= 0:
        return True  # not a pid we wrote: never a reason to delete
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def _quiet_for(folder: Path) -> float:
    """Seconds since anything in ``folder`` (recursively) last changed."""
    import time

    newest = folder.lstat().st_mtime
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            with contextlib.suppress(OSError):
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
    return time.time() - newest


def sweep_stale(path: str | Path) -> list[Path]:
    """Remove staging folders that killed writers of ``path`` left beside it; return them.

    :func:`atomic_dir` stages in ``.NAME.<host>-<pid>.XXXXXXXX.tmp`` (and moves the old
    directory aside as ``.NAME.old-<host>-<pid>``). A sibling of that shape is removed when
    it was made on this machine (same host tag), its process no longer exists, and nothing
    in it changed for :data:`STALE_GRACE_S` seconds. Folders of a live process (this one
    included: another thread may be exporting), of another machine (a shared disk: whether
    its writer lives cannot be told from here) or of any other shape are never touched,
    except untagged ``.NAME.XXXXXXXX.tmp`` folders of older kdedge versions, removed after
    :data:`LEGACY_STALE_S` seconds without a change. An ``.old-`` folder is removed only
    while ``path`` itself exists (otherwise it may be the only copy).
    """
    import re
    import shutil

    path = Path(path)
    name = re.escape(path.name)
    tagged = re.compile(rf"\.{name}\.([0-9a-f]{{8}})-([0-9]+)\.{_RANDOM}\.tmp")
    old = re.compile(rf"\.{name}\.old-([0-9a-f]{{8}})-([0-9]+)")
    legacy = re.compile(rf"\.{name}\.{_RANDOM}\.tmp")
    host, removed = _host(), []
    try:
        siblings = list(path.parent.iterdir())
    except OSError:
        return removed
    for sibling in siblings:
        match = tagged.fullmatch(sibling.name) or old.fullmatch(sibling.name)
        try:
            if not sibling.is_dir() or sibling.is_symlink():
                continue
            if match:
                stale = (
                    match[1] == host
                    and not _alive(int(match[2]))
                    and (sibling.name.endswith(".tmp") or path.exists())
                    and _quiet_for(sibling) > STALE_GRACE_S
                )
            else:
                stale = bool(legacy.fullmatch(sibling.name)) and (
                    _quiet_for(sibling) > LEGACY_STALE_S
                )
        except OSError:
            continue
        if stale:
            shutil.rmtree(sibling, ignore_errors=True)
            removed.append(sibling)
    return removed


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temp directory that replaces ``path`` as a whole on success.

    An existing ``path`` is moved aside first and deleted only after the new one is in
    place, so a crash at any point leaves either the old or the new directory. Staging
    folders that earlier, killed writers of ``path`` left beside it are swept first
    (:func:`sweep_stale` says which: never a live writer's).
    """
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    owner = f"{_host()}-{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{owner}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700; give what mkdir() would
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{owner}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _read_umask() -> int:
    """The process umask (read by setting it, the only portable way, then restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: setting it later would race with other threads


def _umask() -> int:
    return _UMASK
