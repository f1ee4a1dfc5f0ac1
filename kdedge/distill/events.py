"""The JSONL event log of a run, with the seeds' event and field names."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


class EventLog:
    """Append one JSON object per event; each line is flushed so a killed run keeps its log."""

    def __init__(self, path: str | Path | None, run_id: str) -> None:
        self.path = Path(path) if path is not None else None
        self.run_id = run_id
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"event": event, "run_id": self.run_id, "time": round(time.time(), 3), **fields}
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, default=_jsonable) + "\n")
        return record


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
