"""Keep the parallel-thinking tags in decoded text when a tokenizer holds them as special tokens.

The released checkpoints register their tags as *special* added tokens: ThreadWeaver
(arXiv 2512.07843) and ParaThinker (arXiv 2509.04475) add them with
`add_special_tokens({"additional_special_tokens": ...})`, and Parallel-R1 (arXiv 2509.07980)
checks its format on a `skip_special_tokens=False` decode. Decoding with the usual
`skip_special_tokens=True` deletes those tags: string stops on them never fire and the
decoders never fork. A `TagKeeper` decodes the way the formats need: format tags stay,
whatever their flag, and only the other special tokens (eos, pad, chat markers such as
`<|im_start|>`) are dropped, as `skip_special_tokens=True` drops them.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from reasoning.formats.tags import ALL_TAGS


def decode_with_specials(tokenizer, ids: Sequence[int]) -> str:
    """`tokenizer.decode(ids, skip_special_tokens=False)` with no space put around special tokens.

    A slow tokenizer of transformers 4 joins special tokens with spaces unless told
    `spaces_between_special_tokens=False` (a tag held as a special token came back as `" <Path> "`),
    so the flag is passed. The tokenizers this project's transformers ships accept and ignore it,
    except `MistralCommonBackend`, which rejects every extra keyword: such a tokenizer decodes
    without it (it puts no spaces to remove).
    """
    if not getattr(tokenizer, "_parafuse_rejects_spaces_flag", False):
        try:
            return tokenizer.decode(ids, skip_special_tokens=False, spaces_between_special_tokens=False)
        except (TypeError, ValueError):
            # remembered, so later decodes do not raise and catch again; if the plain decode below
            # fails too, the error was not the flag's and propagates
            text = tokenizer.decode(ids, skip_special_tokens=False)
            try:
                tokenizer._parafuse_rejects_spaces_flag = True
            except AttributeError:  # a tokenizer object that takes no new attributes just retries each time
                pass
            return text
    return tokenizer.decode(ids, skip_special_tokens=False)


class TagKeeper:
    """What of a tokenizer's special tokens to keep when decoding: the format tags, nothing else.

    `special_tags` are the format tags the tokenizer holds as special tokens (empty for a
    tokenizer whose tags are ordinary added tokens, like `parafuse model tiny`'s default);
    `dropped` maps the ids of every other special token to its text.
    """

    def __init__(self, tokenizer, tags: Iterable[str] = ALL_TAGS):
        self.tokenizer = tokenizer
        tags = set(tags)
        special: dict[int, str] = {}
        # Flagged special in the added vocabulary (what the fast tokenizer's skip_special_tokens drops) ...
        for i, added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
            if getattr(added, "special", False):
                special[int(i)] = str(added.content)
        # ... and the named ones (bos, eos, pad, unk, extra special tokens), which a slow tokenizer drops.
        for text, i in zip(tokenizer.all_special_tokens, tokenizer.all_special_ids):
            if i is not None:
                special.setdefault(int(i), str(text))
        self.special_tags: tuple[str, ...] = tuple(sorted({t for t in special.values() if t in tags}))
        self.dropped: dict[int, str] = {i: t for i, t in special.items() if t not in tags}
        # longest first, so a marker that contains a shorter one is removed whole
        self._dropped_texts = sorted(set(self.dropped.values()), key=len, reverse=True)

    @property
    def tags_are_special(self) -> bool:
        """Whether any format tag is a special token: then backends must be told to keep special tokens."""
        return bool(self.special_tags)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of `ids` with the format tags kept and every other special token dropped."""
        kept = [i for i in ids if i not in self.dropped]
        return decode_with_specials(self.tokenizer, kept)

    def clean(self, text: str) -> str:
        """Remove the non-tag special tokens' text from a backend's `skip_special_tokens=False` output.

        For backends that return text, not ids (vLLM, OpenAI-compatible servers): what they wrote
        with specials kept, less the eos/pad/chat markers that `skip_special_tokens=True` drops.
        """
        for marker in self._dropped_texts:
            if marker and marker in text:
                text = text.replace(marker, "")
        return text

    def describe(self) -> str:
        if not self.special_tags:
            return "no format tag is a special token"
        shown = ", ".join(self.special_tags[:6]) + (", ..." if len(self.special_tags) > 6 else "")
        return f"{len(self.special_tags)} format tags are special tokens ({shown})"
