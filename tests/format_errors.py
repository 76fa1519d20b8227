"""Checks for the malformed-input tables of tests/test_formats_*.py: a text's first error, where it is and
what it says, the same from `validate` and from `parse`."""
from __future__ import annotations

import pytest

from reasoning.formats import FormatError, get_format


def only_error(fmt: str, text: str, **kw) -> FormatError:
    errors = get_format(fmt).validate(text, **kw)
    assert errors, text
    with pytest.raises(FormatError) as raised:
        get_format(fmt).parse(text, **kw)
    assert raised.value.offset == errors[0].offset and str(raised.value) == str(errors[0])
    return errors[0]


def offset_of(text: str, at) -> int:
    """An offset given as a number, or as (needle, n): the start of the n-th occurrence of needle (1-based)."""
    if isinstance(at, int):
        return at
    needle, nth = at
    pos = -1
    for _ in range(nth):
        pos = text.index(needle, pos + 1)
    return pos


def check_error(err: FormatError, tag: str, offset: int, *words: str) -> None:
    assert err.tag == tag, err
    assert err.offset == offset, err
    msg = str(err)
    assert tag in msg and f"offset {offset}" in msg, msg
    for w in words:
        assert w in msg, msg
