"""Tags held as special tokens (the released checkpoints' tokenizers hold them so) stay in every engine's text.

The two tiny-model variants have the same ids and weights and differ only in the tags' special
flag, so the ordinary variant's `skip_special_tokens=True` decode is an independent oracle for
what the special variant must give. Real runs of the engines are in test_engine_contract.py;
here: the keeper, the vLLM engine's request parameters and output cleaning (without starting
vLLM), and what the OpenAI engine sends to vLLM and to other servers.
"""
from __future__ import annotations

import asyncio
import types

import pytest
from transformers import AutoTokenizer

from reasoning.engines.openai_engine import OpenAIEngine
from reasoning.engines.special_tokens import TagKeeper
from reasoning.formats.tags import ALL_TAGS
from reasoning.types import InputError, Request, SamplingParams

MIXED = "a<|im_start|>b<Parallel><Path> x</Path><|endoftext|></Parallel><|im_end|>"


@pytest.fixture(scope="module")
def toks(tiny_model, tiny_model_special):
    return AutoTokenizer.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(tiny_model_special)


def test_the_special_variant_loses_its_tags_to_a_plain_skip_special_tokens_decode(toks):
    """The bug this guards against, on the fixture itself: without the keeper the tags vanish."""
    plain, special = toks
    ids = special.encode(MIXED, add_special_tokens=False)
    assert ids == plain.encode(MIXED, add_special_tokens=False)
    assert special.decode(ids, skip_special_tokens=True) == "ab x"
    assert plain.decode(ids, skip_special_tokens=True) == "ab<Parallel><Path> x</Path></Parallel>"


def test_keeper_keeps_tags_and_drops_eos_pad_and_chat_markers_on_both_variants(toks):
    plain, special = toks
    ids = plain.encode(MIXED, add_special_tokens=False)
    oracle = plain.decode(ids, skip_special_tokens=True)  # ordinary tags survive the usual decode
    for tok, is_special in ((plain, False), (special, True)):
        keeper = TagKeeper(tok)
        assert keeper.tags_are_special is is_special
        assert set(keeper.special_tags) == (set(ALL_TAGS) if is_special else set())
        assert sorted(keeper.dropped.values()) == ["<|endoftext|>", "<|im_end|>", "<|im_start|>"]
        assert keeper.decode(ids) == oracle
        # what a backend returns with skip_special_tokens=False, cleaned the same way
        assert keeper.clean(tok.decode(ids, skip_special_tokens=False)) == oracle
    assert TagKeeper(special).clean("<|im_start|><|im_start|>") == ""


def test_vllm_engine_asks_for_special_tokens_only_when_tags_are_special(monkeypatch, tiny_model, tiny_model_special):
    """SamplingParams of the in-process vLLM engine, and its output text, without starting vLLM."""
    import vllm

    from reasoning.engines import make_engine

    class FakeLLM:
        def __init__(self, **kw):
            pass

        def get_tokenizer(self):
            return None

    monkeypatch.setattr(vllm, "LLM", FakeLLM)
    p = SamplingParams(max_tokens=8, stop=("</Path>",))
    plain = make_engine("vllm", str(tiny_model))
    special = make_engine("vllm", str(tiny_model_special))
    assert plain._params(p).skip_special_tokens is True  # vLLM's default keeps ordinary tag tokens already
    sp = special._params(p)
    assert sp.skip_special_tokens is False and sp.spaces_between_special_tokens is False
    # vLLM's text with specials kept: the tags stay, the chat markers go, the stop is handled as before
    out = types.SimpleNamespace(prompt_token_ids=[1, 2, 3], outputs=[types.SimpleNamespace(
        index=0, text="<|im_start|>so<Parallel><Path> we", stop_reason="</Path>", token_ids=[1, 5, 2011, 2013, 7],
        logprobs=None, finish_reason="stop")])
    [c] = special._result(out, Request(prompt="q", params=p), 0.1).completions
    assert (c.text, c.stop_string, c.finish_reason, c.tokens) == ("so<Parallel><Path> we", "</Path>", "stop", 5)
    included = SamplingParams(max_tokens=8, stop=("</Path>",), include_stop_str_in_output=True)
    out.outputs[0].text = "<|im_start|>so<Parallel><Path> we</Path>"
    [c] = special._result(out, Request(prompt="q", params=included), 0.1).completions
    assert c.text == "so<Parallel><Path> we</Path>"


def fake_posting(eng: OpenAIEngine, text: str, sent: list):
    async def post(path, body):
        sent.append(body)
        return ({"choices": [{"text": text, "finish_reason": "length"}],
                 "usage": {"prompt_tokens": 2, "completion_tokens": 4}}, 1, eng.servers[0])

    eng._post = post


def ask(eng: OpenAIEngine, **kw):
    return asyncio.run(eng.agenerate(Request(prompt="p", params=SamplingParams(max_tokens=4, **kw))))


def test_openai_engine_asks_vllm_servers_to_keep_special_tags_and_cleans_their_text(tiny_model, tiny_model_special):
    server_text = "<|im_start|>so<Parallel><|endoftext|> x"
    for tokenizer, wanted, text in ((tiny_model_special, {"skip_special_tokens": False,
                                                          "spaces_between_special_tokens": False}, "so<Parallel> x"),
                                    (tiny_model, {}, server_text)):
        eng = OpenAIEngine("tiny", base_url="http://127.0.0.1:9", tokenizer=str(tokenizer))
        eng.servers[0].is_vllm = True  # as a vLLM server answers GET /version
        sent: list = []
        fake_posting(eng, server_text, sent)
        res = ask(eng)
        keys = {k: sent[-1][k] for k in ("skip_special_tokens", "spaces_between_special_tokens") if k in sent[-1]}
        assert keys == wanted
        # ordinary tags: nothing asked, and the server's text is left as it came
        assert res.completions[0].text == text
    # a value set in extra_body wins over the engine's
    eng = OpenAIEngine("tiny", base_url="http://127.0.0.1:9", tokenizer=str(tiny_model_special),
                       extra_body={"spaces_between_special_tokens": True})
    eng.servers[0].is_vllm = True
    sent = []
    fake_posting(eng, "x", sent)
    ask(eng)
    assert sent[-1]["skip_special_tokens"] is False and sent[-1]["spaces_between_special_tokens"] is True


def test_openai_engine_on_a_server_that_is_not_vllm(tiny_model, tiny_model_special, capsys):
    """auto refuses it (it would delete the tags, or reject the parameters); send asks anyway; off warns once."""
    from reasoning.engines import ensure_ready
    from reasoning.testing.fault_server import FaultServer

    with FaultServer(mode="echo", responder=lambda text, seed, i, m: ("so<Path>", "stop")) as srv:
        eng = OpenAIEngine("echo", base_url=srv.url, tokenizer=str(tiny_model_special))
        with pytest.raises(InputError, match="not a vLLM server.*--keep-tags send.*--keep-tags off"):
            ensure_ready(eng)  # what every command runs before its first request
        with pytest.raises(InputError, match="special tokens"):  # a run stops, not one Failure per request
            list(OpenAIEngine("echo", base_url=srv.url, tokenizer=str(tiny_model_special)).iter_results(
                [Request(prompt="p", params=SamplingParams(max_tokens=4))] * 3))
        plain = OpenAIEngine("echo", base_url=srv.url, tokenizer=str(tiny_model))
        assert [r.completions[0].text for _, r in plain.iter_results([Request(prompt="p")])] == ["so<Path>"]

    for mode, wanted in (("send", {"skip_special_tokens": False, "spaces_between_special_tokens": False}),
                         ("off", {})):
        eng = OpenAIEngine("m", base_url="http://127.0.0.1:9", tokenizer=str(tiny_model_special), keep_tags=mode)
        eng.servers[0].is_vllm = False
        sent: list = []
        fake_posting(eng, "x", sent)
        ask(eng)
        ask(eng)
        assert {k: v for k, v in sent[-1].items() if k in wanted or "special" in k} == wanted
    err = capsys.readouterr().err
    assert err.count("--keep-tags off") == 1 and "will delete them" in err
    with pytest.raises(InputError, match="--keep-tags must be one of auto, send, off"):
        OpenAIEngine("m", base_url="http://127.0.0.1:9", keep_tags="sometimes")


def test_keep_tags_flag_reaches_the_openai_engine(tiny_model_special):
    import argparse

    from reasoning.engines import add_engine_args, engine_from_args

    p = argparse.ArgumentParser()
    add_engine_args(p)
    add_engine_args(p, prefix="fusor-", inherit=True, with_model=False)
    args = p.parse_args(["--engine", "openai", "--model", "m", "--base-url", "http://127.0.0.1:9", "--keep-tags",
                         "send"])
    assert engine_from_args(args).keep_tags == "send"
    assert engine_from_args(args, "fusor-").keep_tags == "send", "an unset prefixed flag is the main engine's"
    assert engine_from_args(p.parse_args(["--engine", "openai", "--model", "m", "--base-url", "http://x:1"])
                            ).keep_tags == "auto"


TAGGED = "so<Parallel><Path>1: 2+3=5</Path><Path>2: 5</Path></Parallel><Conclusion>5</Conclusion> done"


def _deferred(tokenizer_dir):
    """An engine that is never started: its decode_ids and truncate are Engine's, on the tokenizer alone."""
    from reasoning.engines.deferred import DeferredEngine

    def build():
        raise AssertionError("decoding and cutting must not build the engine")

    return DeferredEngine(build, "hf", str(tokenizer_dir), tokenizer=str(tokenizer_dir))


def test_decoding_tagged_ids_gives_back_the_text_they_were_encoded_from(toks, tiny_model, tiny_model_special):
    """No space is put around a tag, on both variants, through the keeper and through Engine.decode_ids."""
    for tok, tok_dir in zip(toks, (tiny_model, tiny_model_special)):
        ids = tok.encode(TAGGED, add_special_tokens=False)
        assert TagKeeper(tok).decode(ids) == TAGGED
        assert _deferred(tok_dir).decode_ids(ids) == TAGGED


class _PaddingSlowTokenizer:
    """transformers 4's slow-tokenizer decode: special tokens joined with spaces unless
    `spaces_between_special_tokens=False` (its default was True)."""

    def __init__(self, tok):
        self.tok = tok
        self.added_tokens_decoder = tok.added_tokens_decoder
        self.all_special_tokens, self.all_special_ids = tok.all_special_tokens, tok.all_special_ids
        self.special = {i for i, a in tok.added_tokens_decoder.items() if a.special}
        self.is_fast = False

    def encode(self, text, add_special_tokens=False):
        return self.tok.encode(text, add_special_tokens=add_special_tokens)

    def decode(self, ids, skip_special_tokens=False, spaces_between_special_tokens=True):
        parts, run = [], []
        for i in ids:
            if i in self.special:
                parts += [self.tok.decode(run), self.tok.decode([i])] if run else [self.tok.decode([i])]
                run = []
            else:
                run.append(i)
        parts += [self.tok.decode(run)] if run else []
        return ("" if not spaces_between_special_tokens else " ").join(parts)


class _StrictTokenizer(_PaddingSlowTokenizer):
    """MistralCommonBackend's decode: any keyword beyond skip_special_tokens is a ValueError."""

    def decode(self, ids, skip_special_tokens=False, **kwargs):
        if kwargs:
            raise ValueError(f"Kwargs {list(kwargs)} are not supported")
        return super().decode(ids, skip_special_tokens, spaces_between_special_tokens=False)


def test_a_slow_tokenizer_is_told_not_to_pad_tags_and_a_strict_one_still_decodes(toks):
    from reasoning.engines.deferred import DeferredEngine

    _, special = toks
    ids = special.encode(TAGGED, add_special_tokens=False)
    padding = _PaddingSlowTokenizer(special)
    assert padding.decode(ids) != TAGGED  # the stand-in does pad when not told otherwise
    for tok in (padding, _StrictTokenizer(special)):
        engine = DeferredEngine(lambda: None, "hf", "tiny")
        engine._tokenizer = tok
        assert TagKeeper(tok).decode(ids) == TAGGED
        assert engine.decode_ids(ids) == TAGGED
        assert engine.decode_ids(ids) == TAGGED  # again, after a strict tokenizer's rejection was remembered
        n = len(special.encode("so<Parallel><Path>1", add_special_tokens=False))
        assert engine.truncate(TAGGED, n) == "so<Parallel><Path>1"  # a slow cut decodes, and stays a prefix


def test_a_deferred_engine_cuts_with_the_tokenizer_before_it_starts(tiny_model_special):
    """Only hf/vllm engines are deferred; unstarted, they cut by tokens, not words (the old scripted branch)."""
    from reasoning.engines.scripted import truncate_words

    engine = _deferred(tiny_model_special)
    ids = AutoTokenizer.from_pretrained(tiny_model_special).encode(TAGGED, add_special_tokens=False)
    for n in (3, 6):
        cut = engine.truncate(TAGGED, n)
        # the fast tokenizer cuts at character offsets; decoding the first n ids is an independent oracle
        assert cut == AutoTokenizer.from_pretrained(tiny_model_special).decode(ids[:n])
        assert cut != truncate_words(TAGGED, n)
    assert not engine.started
