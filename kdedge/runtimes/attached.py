"""What a runtime holds besides its model: teacher targets and a request log.

:class:`Attached` gives both runtimes (classifier and generator) one way to report those
parts' stats and to close them, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdedge.runtimes.fallback_target import FallbackTarget
    from kdedge.runtimes.requestlog import TieredLog


class Attached:
    """Mixin for a runtime with ``fallback`` / ``low_cost`` targets and a ``log``."""

    fallback: FallbackTarget | None
    low_cost: FallbackTarget | None
    log: TieredLog | None

    def attached_stats(self) -> dict[str, Any]:
        """Stats of the teacher targets and the log that are present, by role."""
        out: dict[str, Any] = {}
        for name, target in (("fallback", self.fallback), ("low_cost", self.low_cost)):
            if target is not None:
                out[name] = target.stats()
        if self.log is not None:
            out["log"] = self.log.stats()
        return out

    def close(self) -> None:
        """Close the teacher clients and flush the log."""
        for target in (self.fallback, self.low_cost):
            if target is not None:
                target.close()
        if self.log is not None:
            self.log.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
