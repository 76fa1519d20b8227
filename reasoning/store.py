"""The generation store: an append-only JSONL file of results, keyed by request content.

Every pipeline writes through it. A result is written and flushed the moment it completes,
so a crash or a kill loses nothing that finished; a rerun skips finished keys and sends
nothing twice; a failed request is a row with its error, retried on the next run. A later
row for a key supersedes an earlier "error" row; `compact` rewrites the file without the
superseded rows (atomically, so a kill during it is harmless).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from reasoning.jsonl import read_jsonl, write_jsonl_atomic
from reasoning.types import Failure, InputError, Request, Result

STORE_VERSION = 1


def request_key(engine: str, model: str, request: Request) -> str:
    """Hash of (engine, model, prompt or messages, sampling params, template/extra key)."""
    payload = {
        "v": STORE_VERSION,
        "engine": engine,
        "model": model,
        "messages": [dict(m) for m in request.messages] if request.messages is not None else None,
        "prompt": request.prompt,
        "params": request.params.to_dict(),
        "extra": request.key_extra,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class GenerationStore:
    """Append-only result rows in one JSONL file (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, fsync: bool = False):
        self.path = Path(path)
        self.fsync = fsync
        self.done: dict[str, dict[str, Any]] = {}
        self.failed: dict[str, dict[str, Any]] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            for lineno, row in enumerate(read_jsonl(self.path, repair_tail=True), 1):
                if "key" not in row or "status" not in row:
                    raise InputError(f"{self.path}:{lineno}: not a generation-store row (no key/status); "
                                     "is --out pointing at some other file?")
                self._index(row)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _index(self, row: dict[str, Any]) -> None:
        key = row["key"]
        if row["status"] == "ok":
            self.done[key] = row
            self.failed.pop(key, None)
        elif key not in self.done:
            self.failed[key] = row

    def __contains__(self, key: str) -> bool:
        return key in self.done

    def result(self, key: str) -> Result | None:
        row = self.done.get(key)
        return Result.from_dict(row["result"]) if row else None

    def _append(self, row: dict[str, Any]) -> None:
        line = (json.dumps(row, ensure_ascii=False) + "\n").encode()
        view = memoryview(line)
        while view:  # one row, one write; loop only on a partial write
            view = view[os.write(self._fd, view):]
        if self.fsync:
            os.fsync(self._fd)
        self._index(row)

    def put(self, key: str, request: Request, outcome: Result | Failure, meta: dict[str, Any] | None = None):
        row: dict[str, Any] = {"key": key, "id": request.id, "time": round(time.time(), 3)}
        if isinstance(outcome, Result):
            row.update(status="ok", request=request.to_dict(), result=outcome.to_dict())
        else:
            row.update(status="error", request=request.to_dict(), error=outcome.error, attempts=outcome.attempts)
        if meta:
            row["meta"] = meta
        self._append(row)

    def rows(self) -> Iterable[dict[str, Any]]:
        """The live row per key: the ok row if there is one, else the latest failure."""
        yield from self.done.values()
        yield from self.failed.values()

    def compact(self, order: list[str] | None = None) -> None:
        """Rewrite the file with one row per key (in `order` where given), atomically."""
        live = {r["key"]: r for r in self.rows()}
        keys = list(dict.fromkeys([k for k in (order or []) if k in live] + list(live)))
        os.close(self._fd)
        try:
            write_jsonl_atomic(self.path, (live[k] for k in keys), fsync=True)
        finally:  # appends go to whichever file now holds the path
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
