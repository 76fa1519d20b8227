"""The Engine contract, run against every engine on the tiny model.

hf and vllm run in-process; openai runs against real servers started by the fixtures
(vLLM's OpenAI server and `transformers serve`). The tiny model has random weights, so the
tests assert structure, limits, stops, seeds and usage, never particular words. The `-special`
kinds run the same suite on the variant whose tags are special tokens (conftest.py).
"""
from __future__ import annotations

import asyncio

import pytest
from conftest import SPECIAL_KINDS, get_engine

from reasoning.types import Failure, Request, Result, SamplingParams

pytestmark = pytest.mark.slow

CHAT = ({"role": "user", "content": "What is 12 + 30? Answer briefly."},)


def chat(n=1, **kw) -> Request:
    return Request(messages=CHAT, params=SamplingParams(n=n, **kw))


def test_chat_request_returns_n_completions_with_usage(engine):
    r = engine.generate_one(chat(n=3, max_tokens=12, seed=1))
    assert isinstance(r, Result)
    assert len(r.completions) == 3
    assert r.prompt_tokens == len(engine.tokenizer(engine.render_chat(CHAT), add_special_tokens=False)["input_ids"])
    assert r.latency_s > 0
    for c in r.completions:
        assert c.finish_reason in ("stop", "length")
        assert 0 < c.tokens <= 12 or (c.tokens == 0 and c.finish_reason == "stop")
    assert r.completion_tokens == sum(c.tokens for c in r.completions)


def test_completion_without_stop_runs_to_max_tokens(engine):
    r = engine.generate_one(chat(n=2, max_tokens=9, seed=2))
    lengths = [c for c in r.completions if c.finish_reason == "length"]
    assert lengths, "a random model almost never emits EOS within 9 tokens"
    assert all(c.tokens == 9 for c in lengths)


def test_same_seed_same_output_and_other_seed_differs(engine):
    a = engine.generate_one(chat(n=2, max_tokens=16, seed=123))
    b = engine.generate_one(chat(n=2, max_tokens=16, seed=123))
    c = engine.generate_one(chat(n=2, max_tokens=16, seed=999))
    assert a.texts == b.texts
    assert a.texts != c.texts


def test_samples_of_one_request_differ(engine):
    r = engine.generate_one(chat(n=4, max_tokens=16, seed=5))
    assert len(set(r.texts)) > 1


def test_raw_continuation_of_rendered_chat_matches_chat(engine):
    """Rendering the chat template ourselves and continuing it as raw text is the same prompt."""
    rendered = engine.render_chat(CHAT)
    via_chat = engine.generate_one(chat(max_tokens=10, temperature=0))
    via_raw = engine.generate_one(Request(prompt=rendered, params=SamplingParams(max_tokens=10, temperature=0)))
    assert via_raw.prompt_tokens == via_chat.prompt_tokens
    # `transformers serve` strips whitespace around chat replies (not raw completions).
    assert [t.strip() for t in via_raw.texts] == [t.strip() for t in via_chat.texts]
    assert via_raw.completions[0].tokens == via_chat.completions[0].tokens


def test_raw_continuation_extends_a_partial_assistant_turn(engine):
    partial = engine.render_chat(CHAT) + "Let me think. <Parallel><Path>"
    r = engine.generate_one(Request(prompt=partial, params=SamplingParams(max_tokens=6, temperature=0)))
    base = engine.generate_one(Request(prompt=engine.render_chat(CHAT), params=SamplingParams(max_tokens=6,
                                                                                            temperature=0)))
    assert r.prompt_tokens > base.prompt_tokens
    assert r.completions[0].tokens > 0


@pytest.mark.parametrize("include", [False, True])
def test_stop_strings_end_completions_and_are_reported(engine, include):
    stops = ("1", "5")
    r = engine.generate_one(chat(n=8, max_tokens=48, seed=7, stop=stops, include_stop_str_in_output=include))
    reported = [c for c in r.completions if c.stop_string is not None]
    assert len(reported) >= 4, "digits are frequent in the tiny model's output; most samples hit one"
    for c in r.completions:
        body = c.text[: -len(c.stop_string)] if (include and c.stop_string) else c.text
        assert not any(s in body for s in stops), (c.text, c.stop_string)
        if c.stop_string is not None:
            assert c.stop_string in stops
            assert c.finish_reason == "stop"
            assert c.text.endswith(c.stop_string) == include


def test_iter_results_yields_every_request_once(engine):
    reqs = [chat(n=1, max_tokens=4, seed=i) for i in range(6)]
    seen = [i for i, r in engine.iter_results(reqs) if isinstance(r, Result)]
    assert sorted(seen) == list(range(6))


def test_agenerate_runs_requests_concurrently_to_completion(engine):
    async def main():
        try:
            return await asyncio.gather(*(engine.agenerate(chat(max_tokens=4, seed=i)) for i in range(4)))
        finally:
            if hasattr(engine, "aclose"):
                await engine.aclose()  # the HTTP session belongs to this loop

    results = asyncio.run(main())
    assert len(results) == 4 and all(not isinstance(r, Failure) and r.completions for r in results)


def test_greedy_is_deterministic_without_seed(engine):
    a = engine.generate_one(chat(max_tokens=8, temperature=0))
    b = engine.generate_one(chat(max_tokens=8, temperature=0))
    assert a.texts == b.texts


def test_greedy_with_several_samples_gives_that_many_equal_completions(engine):
    # vLLM (in process or as a server) refuses n > 1 under greedy sampling; every engine answers it
    single = engine.generate_one(chat(max_tokens=8, temperature=0))
    r = engine.generate_one(chat(max_tokens=8, temperature=0, n=3))
    assert len(r.completions) == 3 and set(r.texts) == set(single.texts)
    assert len({tuple(c.token_ids or ()) for c in r.completions}) == 1


# Only vLLM enforces a context limit (max_model_len 2048 here): transformers and
# `transformers serve` accept any length, so there is nothing to prove on them.
@pytest.mark.parametrize("engine", ["vllm", "openai-vllm"], indirect=True)
def test_a_request_over_the_context_limit_fails_alone(engine):
    too_long = Request(prompt="1 2 3 4 " * 2000, params=SamplingParams(max_tokens=4))
    outcomes = engine.generate([chat(max_tokens=4, seed=1), too_long, chat(max_tokens=4, seed=2)])
    assert isinstance(outcomes[0], Result) and isinstance(outcomes[2], Result)
    assert isinstance(outcomes[1], Failure)
    assert "2048" in outcomes[1].error or "context" in outcomes[1].error.lower()


def test_a_caller_that_gives_up_does_not_break_the_engine(engine):
    """An abandoned agenerate (its event loop closed since) must not stop later requests."""
    async def impatient():
        task = asyncio.ensure_future(engine.agenerate(chat(max_tokens=64, seed=3)))
        await asyncio.sleep(0)  # the request is under way ...
        task.cancel()  # ... when its caller gives up: the engine must let the cancellation through
        try:
            await task
        finally:
            await engine.aclose()

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(impatient())
    r = engine.generate_one(chat(max_tokens=4, seed=4))
    assert r.completions and r.completions[0].tokens > 0


TAG = "<Parallel>"


@pytest.mark.parametrize("engine", SPECIAL_KINDS, indirect=True)
def test_tags_that_are_special_tokens_stay_in_the_text_and_stops_on_them_fire(engine, request):
    """The released checkpoints hold their tags as special tokens; an engine decoding with
    skip_special_tokens=True would return "" here and never stop on the tag. The ordinary variant
    (same ids and weights, tags not special) is the oracle: both must give the same text."""
    plain = get_engine(request.node.callspec.params["engine"].removesuffix("-special"))
    tag_id = engine.tokenizer.convert_tokens_to_ids(TAG)
    base = engine.render_chat(CHAT)

    def run(eng, suffix, **kw):
        params = SamplingParams(max_tokens=4, temperature=0, **kw)
        return eng.generate_one(Request(prompt=base + suffix, params=params)).completions[0]

    free, same = run(engine, "So we add" + TAG), run(plain, "So we add" + TAG)
    # the random tiny model (tied embeddings) greedily repeats the last token of its prompt: here, the tag
    assert tag_id in free.token_ids, "precondition: the model wrote the tag token"
    assert TAG in free.text and (free.text, free.token_ids) == (same.text, same.token_ids)
    first = free.token_ids.index(tag_id)
    for include in (False, True):
        c = run(engine, "So we add" + TAG, stop=(TAG,), include_stop_str_in_output=include)
        assert (c.stop_string, c.finish_reason, c.tokens) == (TAG, "stop", first + 1)
        assert c.text == free.text[: free.text.index(TAG)] + (TAG if include else "")
    # the chat markers and eos a model writes are dropped from the text, as before
    for suffix, kw in (("Then<|im_start|>", {}), ("Then<|im_end|>", {"ignore_eos": True})):
        c, p = run(engine, suffix, **kw), run(plain, suffix, **kw)
        assert c.tokens == 4 and c.text == p.text and "<|im_" not in c.text and "<|endoftext|>" not in c.text
