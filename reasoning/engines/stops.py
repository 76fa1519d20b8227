"""Stop-string handling that every engine applies the same way."""
from __future__ import annotations


def apply_stop(text: str, stops: tuple[str, ...], include: bool) -> tuple[str, str | None]:
    """Cut `text` at the earliest stop string; return (text, the stop string that matched).

    Engines whose backend already stops on the strings still pass their text through here: a
    backend that stops on a token can overshoot the string by a few characters, and a server
    that ignores `stop` must still be held to it.
    """
    best_at, best = -1, None
    for s in stops:
        if not s:
            continue
        at = text.find(s)
        # Earliest match wins; on a tie the longer string is the more specific one.
        if at >= 0 and (best_at < 0 or at < best_at or (at == best_at and len(s) > len(best))):
            best_at, best = at, s
    if best is None:
        return text, None
    end = best_at + len(best) if include else best_at
    return text[:end], best


def strip_trailing_stop(text: str, stop: str | None, include: bool) -> str:
    """Give a text that a backend cut at `stop` the shape the request asked for."""
    if stop is None:
        return text
    if include and not text.endswith(stop):
        return text + stop
    if not include and text.endswith(stop):
        return text[: -len(stop)]
    return text
