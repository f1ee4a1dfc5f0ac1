"""The bounded table of a server's client connections: admission, eviction, reaping."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

ADMIT_WAIT_S = 0.5  # how long a new connection waits for an evicted one to let go


class Connections:
    """The table of open client connections, bounded at ``limit``.

    Each connection is *reading* (waiting for a complete request: a new connection, a
    keep-alive one between requests, or one whose body is still arriving) or *busy* (its
    request is being answered). A connection may read for at most ``timeout`` seconds in
    a row; :meth:`reap` closes those that take longer (a slowloris trickling one byte at a
    time never reaches a socket timeout, but does reach this deadline). When the table is
    full, a new connection evicts the one that has been reading longest, so clients that
    only hold connections open cannot lock out a request that is ready (``/healthz``
    included); when every connection is busy, the new one is refused (503).
    """

    def __init__(self, limit: int, timeout: float) -> None:
        self.limit = limit
        self.timeout = timeout
        self._cond = threading.Condition()
        self._reading: dict[socket.socket, float] = {}  # -> since (monotonic); oldest first
        self._busy: set[socket.socket] = set()
        self._closing: set[socket.socket] = set()  # shut down, its thread not yet gone
        self.evicted = {"capacity": 0, "timeout": 0}
        self.rejected = 0

    @property
    def open(self) -> int:
        return len(self._reading) + len(self._busy) + len(self._closing)

    def admit(self, sock: socket.socket) -> bool:
        """Take a slot for ``sock`` (evicting the longest-reading connection if need be);
        False when every slot is busy answering a request."""
        with self._cond:
            if self.open >= self.limit and self._reading:
                self._close(next(iter(self._reading)), "capacity")
            deadline = time.monotonic() + ADMIT_WAIT_S
            while self.open >= self.limit:
                left = deadline - time.monotonic()
                if left <= 0 or (not self._closing and not self._reading):
                    self.rejected += 1
                    return False
                if not self._closing and self._reading:
                    self._close(next(iter(self._reading)), "capacity")
                self._cond.wait(left)
            self._reading[sock] = time.monotonic()
            return True

    def busy(self, sock: socket.socket) -> bool:
        """``sock`` has a whole request; False if it was closed meanwhile (do not answer)."""
        with self._cond:
            if self._reading.pop(sock, None) is None:
                return False
            self._busy.add(sock)
            return True

    def reading(self, sock: socket.socket) -> None:
        """``sock`` was answered and waits for its next request (keep-alive)."""
        with self._cond:
            if sock in self._busy:
                self._busy.discard(sock)
                self._reading[sock] = time.monotonic()

    def release(self, sock: socket.socket) -> None:
        """The connection's thread is done with it."""
        with self._cond:
            self._reading.pop(sock, None)
            self._busy.discard(sock)
            self._closing.discard(sock)
            self._cond.notify_all()

    def reap(self) -> None:
        """Close the connections that have been reading for longer than ``timeout`` (plus
        half a second: a silent client meets its socket timeout first and gets a 408; this
        catches those that keep the socket timeout at bay by trickling bytes)."""
        now = time.monotonic()
        with self._cond:
            late = [s for s, since in self._reading.items() if now - since > self.timeout + 0.5]
            for sock in late:
                self._close(sock, "timeout")

    def close_all(self) -> None:
        with self._cond:
            for sock in [*self._reading, *self._busy]:
                self._close(sock, None)

    def _close(self, sock: socket.socket, why: str | None) -> None:
        """Shut ``sock`` down (its thread wakes from recv with EOF and ends); lock held."""
        self._reading.pop(sock, None)
        self._busy.discard(sock)
        self._closing.add(sock)
        if why is not None:
            self.evicted[why] += 1
        with contextlib.suppress(OSError):  # already closed by its thread
            sock.shutdown(socket.SHUT_RDWR)
