"""The classifier early-stop rule: stop when validation has plateaued, by a vote of signals.

Gates decide whether a checkpoint may ship (:mod:`kdedge.distill.gates`); this rule decides
when more epochs stop paying.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kdedge.errors import ConfigError, DataError
from kdedge.runtimes.manifest_fields import finite

_STOP_EPS = 1e-12  # a gain of exactly the threshold counts as improvement despite float error


@dataclass(frozen=True)
class EpochSignals:
    """What the stop rule sees of one finished epoch (None: signal not available)."""

    val_accuracy: float
    rare_class_recall: float | None = None
    kd_loss: float | None = None


@dataclass(frozen=True)
class ClassifierStopRule:
    """Stop when ``signals_needed`` of 3 plateau signals hold for ``consecutive`` epochs.

    Each epoch is compared with the one before. The signals: validation accuracy improved
    by less than ``min_accuracy_gain`` (absolute; 0.0015 = 0.15 points), rare-class recall
    by less than ``min_rare_recall_gain``, KD loss by less than ``min_kd_loss_rel_gain``
    (relative). A missing signal (None: no rare rows, no teacher) takes no part in the vote:
    the rule then needs ``min(signals_needed, signals available)``, so a hard-label run
    stops only when accuracy itself has plateaued. It never fires before
    ``consecutive + 1`` epochs (3 by default) or ``min_epochs``.
    """

    min_accuracy_gain: float = 0.0015
    min_rare_recall_gain: float = 0.0025
    min_kd_loss_rel_gain: float = 0.01
    signals_needed: int = 2
    consecutive: int = 2
    min_epochs: int = 2

    def __post_init__(self) -> None:
        for name in ("min_accuracy_gain", "min_rare_recall_gain", "min_kd_loss_rel_gain"):
            value = getattr(self, name)
            if not finite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0; got {value!r}")
        for name, low, high in (("signals_needed", 1, 3), ("consecutive", 1, None)):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < low
                or (high is not None and value > high)
            ):
                allowed = f"{low}..{high}" if high is not None else f">= {low}"
                raise ConfigError(f"{name} must be an integer {allowed}; got {value!r}")
        if isinstance(self.min_epochs, bool) or not isinstance(self.min_epochs, int):
            raise ConfigError(f"min_epochs must be an integer; got {self.min_epochs!r}")

    def _signals(self, prev: EpochSignals, cur: EpochSignals) -> list[tuple[bool, str]]:
        """(held, description) for each plateau signal of ``cur`` against ``prev``."""
        gain = cur.val_accuracy - prev.val_accuracy
        held = gain < self.min_accuracy_gain - _STOP_EPS
        out = [(held, f"val accuracy {gain:+.4f} {'<' if held else '>='} {self.min_accuracy_gain}")]
        if prev.rare_class_recall is None or cur.rare_class_recall is None:
            pass  # not available: no vote
        else:
            gain = cur.rare_class_recall - prev.rare_class_recall
            held = gain < self.min_rare_recall_gain - _STOP_EPS
            sign = "<" if held else ">="
            out.append((held, f"rare-class recall {gain:+.4f} {sign} {self.min_rare_recall_gain}"))
        if prev.kd_loss is None or cur.kd_loss is None:
            pass  # not available: no vote
        else:
            rel = (prev.kd_loss - cur.kd_loss) / prev.kd_loss if prev.kd_loss > 0 else 0.0
            held = rel < self.min_kd_loss_rel_gain - _STOP_EPS
            sign = "<" if held else ">="
            out.append(
                (held, f"KD loss improved {rel:+.2%} {sign} {self.min_kd_loss_rel_gain:.2%}")
            )
        return out

    def should_stop(self, history: Sequence[EpochSignals]) -> tuple[bool, str]:
        """Decide after the last epoch of ``history``; return (stop, reason)."""
        for i, epoch in enumerate(history, start=1):
            values = (epoch.val_accuracy, epoch.rare_class_recall, epoch.kd_loss)
            optional_ok = all(v is None or finite(v) for v in values[1:])
            if not (finite(values[0]) and optional_ok):
                raise DataError(f"epoch {i} signals must be finite numbers (or None); got {epoch}")
        needed = max(self.min_epochs, self.consecutive + 1)
        n = len(history)
        if n < needed:
            return False, f"continue: {n} epoch(s) so far; the stop rule needs at least {needed}"
        notes, available = [], 3
        for i in range(n - 1, n - 1 - self.consecutive, -1):  # newest first
            signals = self._signals(history[i - 1], history[i])
            held = sum(h for h, _ in signals)
            available = len(signals)
            needed_now = min(self.signals_needed, available)
            note = f"epoch {i + 1}: " + ", ".join(text for _, text in signals)
            if held < needed_now:
                return (
                    False,
                    f"continue: only {held} of {len(signals)} plateau signals held at {note}",
                )
            notes.insert(0, note)
        return True, (
            f"stop after epoch {n}: at least {min(self.signals_needed, available)} of {available} "
            f"plateau signals held for "
            f"{self.consecutive} consecutive epochs ({'; '.join(notes)})"
        )
