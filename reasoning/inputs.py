"""Build `Request`s: from prompt files (JSONL, with errors that name the file, line and field) and
from prompt templates (`template_request`, what every pipeline uses)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from reasoning.jsonl import read_jsonl
from reasoning.types import InputError, Request, SamplingParams

FIELDS_HELP = ("each line needs `messages` (a chat), `prompt` (one user message) or `raw` (text the model "
               "continues as-is), or pass --template to build the user message from the line's fields")


def derive_seed(seed: int, request_id: str) -> int:
    """A stable per-request seed; hashing keeps nearby requests' random streams unrelated."""
    h = hashlib.sha256(f"{seed}:{request_id}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def seeded(params: SamplingParams, request_id: str) -> SamplingParams:
    """`params` with its base seed replaced by the request's own (no seed stays no seed)."""
    if params.seed is None:
        return params
    return SamplingParams.from_dict({**params.to_dict(), "seed": derive_seed(params.seed, request_id)})


def chat_messages(text: str, system: str | None = None) -> tuple[dict[str, str], ...]:
    """One user turn, after a system message when one is given."""
    msgs = [{"role": "system", "content": system}] if system else []
    return tuple(msgs + [{"role": "user", "content": text}])


def template_request(library, template: str, params: SamplingParams, request_id: str | None = None,
                     system: str | None = None, key_suffix: str = "", **variables: Any) -> Request:
    """A one-turn chat whose user message is `template` rendered with `variables`.

    The template's name and text hash are part of the store key, so editing a template
    regenerates what it produced; `key_suffix` separates requests that are otherwise equal on
    purpose (a retry of the same prompt).
    """
    text = library.render(template, **variables)
    return Request(messages=chat_messages(text, system), params=params, id=request_id,
                   key_extra=f"{template}@{library.version(template)}{key_suffix}")


def requests_from_jsonl(path: str | Path, params: SamplingParams, template: str | None = None,
                        library=None, system: str | None = None) -> list[Request]:
    path = Path(path)
    if not path.exists():
        raise InputError(f"input file {path} does not exist")
    rows = read_jsonl(path)
    if not rows:
        raise InputError(f"input file {path} has no rows")
    key_extra = ""
    if template:
        from prompts import default_library

        library = library or default_library()
        key_extra = f"{template}@{library.version(template)}"
    out = []
    for lineno, row in enumerate(rows, 1):
        where = f"{path}:{lineno}"
        rid = str(row.get("id", lineno - 1))
        p = params
        if "params" in row:
            if not isinstance(row["params"], dict):
                raise InputError(f"{where}: field `params` must be an object of sampling params")
            try:
                p = SamplingParams.from_dict({**params.to_dict(), **row["params"]})
            except (InputError, TypeError) as e:
                raise InputError(f"{where}: field `params`: {e}") from None
        p = seeded(p, rid)
        try:
            out.append(_request(row, p, rid, template, library, system, key_extra))
        except InputError as e:
            raise InputError(f"{where}: {e}") from None
    return out


def _request(row: dict[str, Any], p: SamplingParams, rid: str, template, library, system, key_extra) -> Request:
    if template:
        from prompts import PromptError

        try:
            text = library.render(template, **row)
        except PromptError as e:
            raise InputError(str(e)) from None
        return Request(messages=chat_messages(text, system), params=p, id=rid, key_extra=key_extra)
    if "messages" in row:
        msgs = row["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise InputError("field `messages` must be a non-empty list of {role, content} objects")
        return Request(messages=tuple(msgs), params=p, id=rid)
    if "prompt" in row:
        if not isinstance(row["prompt"], str):
            raise InputError("field `prompt` must be a string")
        return Request(messages=chat_messages(row["prompt"], system), params=p, id=rid)
    if "raw" in row:
        if not isinstance(row["raw"], str):
            raise InputError("field `raw` must be a string")
        return Request(prompt=row["raw"], params=p, id=rid)
    raise InputError(f"missing field: {FIELDS_HELP}; found fields: {', '.join(sorted(row)) or 'none'}")

