"""Open a bundle's engine on a second thread, overlapped with the rest of a cold start.

The thread first imports the engine (``onnxruntime`` alone is ~40 ms) while the caller
checks the sha256 of the files; it compiles the artifact only once the caller calls
:meth:`BackgroundOpen.start`, after those checks passed, so no unverified byte ever
reaches the engine. The compile (which releases the GIL) then overlaps the caller's
tokenizer load.

::

    opening = BackgroundOpen(lambda: open_backend(name, path), prepare=lambda: import_engine(name))
    try:
        verify_files(root, manifest, [artifact.name])
        opening.start()
        tokenizer = Tokenizer(...)
        engine = opening.result()
    except BaseException:
        opening.cancel()
        raise
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class BackgroundOpen(Generic[T]):
    """``prepare()`` at once, then ``opener()`` after :meth:`start`, on a daemon thread."""

    def __init__(
        self, opener: Callable[[], T], *, prepare: Callable[[], object] | None = None
    ) -> None:
        self._open = opener
        self._prepare = prepare
        self._go = threading.Event()
        self._cancelled = False
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kdedge-load", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            if self._prepare is not None:
                self._prepare()
            self._go.wait()
            if not self._cancelled:
                self._value = self._open()
        except BaseException as exc:  # re-raised in the caller's thread by result()
            self._error = exc

    def start(self) -> None:
        """Let the thread open the engine (call once the files are verified)."""
        self._go.set()

    def result(self) -> T:
        """The opened engine (waits for it), or the exception opening it raised."""
        if not self._go.is_set():
            raise RuntimeError("BackgroundOpen.result() before start()")
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def cancel(self) -> None:
        """Never open (or drop what was opened); waits for the thread to end."""
        self._cancelled = True
        self._go.set()
        self._thread.join()
        self._value = None
