"""The hf engine batches compatible requests: same results as one at a time where that is defined.

Greedy requests give the same text, token ids, counts and finish reasons batched as alone; each row's
log-probs are those of a forward pass over its own prompt (left padding is masked out); a request
that cannot run fails alone; with `exact_seeds` every request runs alone, exactly as before batching.
"""
from __future__ import annotations

import argparse

import pytest
import torch

from reasoning.engines import add_engine_args, engine_options, make_engine
from reasoning.types import Failure, InputError, Request, Result, SamplingParams

TOLERANCE = 1e-4  # float32 on a CPU: batched and alone differ by ~1e-6


@pytest.fixture(scope="module")
def batched(tiny_model):
    return make_engine("hf", str(tiny_model), batch_size=4)


@pytest.fixture(scope="module")
def exact(tiny_model):
    return make_engine("hf", str(tiny_model), exact_seeds=True)


@pytest.fixture
def generate_calls(batched, monkeypatch):
    """The number of rows of each `model.generate` call the batched engine makes."""
    calls: list[int] = []
    inner = batched.lm.generate

    def counting(*args, **kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        calls.append(ids.shape[0] * kwargs.get("num_return_sequences", 1))
        return inner(*args, **kwargs)

    monkeypatch.setattr(batched.lm, "generate", counting)
    return calls


def chat(i: int, **params) -> Request:
    # Prompts of different lengths, so every batch is padded.
    text = f"Question {i}: what is {i * 37} + {i * 11}?" + " then add one" * (i % 3)
    return Request(messages=({"role": "user", "content": text},), params=SamplingParams(**params), id=f"q{i}")


def raw(i: int, **params) -> Request:
    return Request(prompt=f"Question: what is {i} + {i * 3}? " + "step " * i, params=SamplingParams(**params))


def rows(result: Result) -> list[tuple]:
    return [(c.text, c.token_ids, c.tokens, c.finish_reason, c.stop_string) for c in result.completions]


def same_as_alone(got: list, want: list) -> None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert isinstance(g, Result) and isinstance(w, Result), (i, g, w)
        assert rows(g) == rows(w), i
        assert g.prompt_tokens == w.prompt_tokens and g.request_id == w.request_id


def test_greedy_batched_equals_one_at_a_time(batched, exact, generate_calls):
    reqs = [chat(i, temperature=0, max_tokens=20, n=1 + i % 2) for i in range(6)]
    reqs += [raw(i, temperature=0, max_tokens=20) for i in range(4)]
    got = batched.generate(reqs)
    assert generate_calls == [1 + 2 + 1 + 2, 1 + 2 + 1 + 1, 1 + 1], "10 requests, batches of 4 prompts x n"
    same_as_alone(got, exact.generate(reqs))
    for res in got:
        assert all(c.tokens == 20 and c.finish_reason == "length" for c in res.completions)


def test_mixed_settings_are_batched_apart_and_each_keeps_its_own(batched, exact, generate_calls):
    """Requests differ in max_tokens and stops: each group is its own batch, each request its own limits."""
    stops = ("1", "5")
    reqs = []
    for i in range(4):
        reqs.append(raw(i, temperature=0, max_tokens=6))
        reqs.append(raw(i, temperature=0, max_tokens=30, stop=stops, include_stop_str_in_output=bool(i % 2)))
    got = batched.generate(reqs)
    assert sorted(generate_calls) == [4, 4], "two groups of four"
    same_as_alone(got, exact.generate(reqs))
    assert [c.tokens for r in got[0::2] for c in r.completions] == [6] * 4
    stopped = [c for r in got[1::2] for c in r.completions if c.stop_string]
    assert stopped, "digits are frequent in the tiny model's greedy output after these prompts"
    for r, req in zip(got[1::2], reqs[1::2]):
        for c in r.completions:
            include = req.params.include_stop_str_in_output
            body = c.text[: -len(c.stop_string)] if include and c.stop_string else c.text
            assert not any(s in body for s in stops)
            assert c.tokens <= 30 and len(c.token_ids) == c.tokens
            if c.stop_string:
                assert c.finish_reason == "stop" and c.text.endswith(c.stop_string) == include


def test_greedy_logprobs_per_row_match_one_at_a_time(batched, exact):
    reqs = [chat(i, temperature=0, max_tokens=12, n=1 + i % 2, logprobs=True) for i in range(5)]
    got, want = batched.generate(reqs), exact.generate(reqs)
    same_as_alone(got, want)
    worst = max(abs(a - b) for g, w in zip(got, want) for cg, cw in zip(g.completions, w.completions)
                for a, b in zip(cg.logprobs, cw.logprobs))
    assert worst < TOLERANCE, worst


def forced_logprobs(engine, prompt: str, ids: list[int]) -> list[float]:
    """log p(ids[t] | prompt, ids[:t]) from one unpadded forward pass."""
    prompt_ids = engine.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = engine.lm(torch.tensor([prompt_ids + ids])).logits[0].float().log_softmax(-1)
    at = torch.arange(len(prompt_ids) - 1, len(prompt_ids) + len(ids) - 1)
    return logits[at, torch.tensor(ids)].tolist()


def test_sampled_batch_with_n_gives_each_row_its_own_ids_and_logprobs(batched):
    stops = ("1", "5")
    reqs = [chat(i, n=3, max_tokens=24, seed=i, stop=stops, logprobs=True) for i in range(4)]
    got = batched.generate(reqs)
    eos = set(batched.eos_ids) | {batched.tokenizer.pad_token_id}
    worst = 0.0
    for req, res in zip(reqs, got):
        assert isinstance(res, Result) and len(res.completions) == 3
        assert len(set(res.texts)) > 1, "the rows of one request are sampled apart"
        prompt = batched.prompt_text(req)
        assert res.prompt_tokens == len(batched.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        for c in res.completions:
            assert len(c.token_ids) == len(c.logprobs) == c.tokens <= 24
            assert c.finish_reason == ("length" if c.tokens == 24 and not c.stop_string else "stop")
            assert not any(s in c.text for s in stops)
            text = batched.tokenizer.decode([t for t in c.token_ids if t not in eos])
            # The last token may run past a stop string that ends inside it.
            assert text == c.text if c.stop_string is None else text.startswith(c.text + c.stop_string)
            worst = max([worst] + [abs(a - b) for a, b in zip(c.logprobs, forced_logprobs(batched, prompt,
                                                                                         c.token_ids))])
    assert worst < TOLERANCE, worst
    assert len({r.latency_s for r in got}) == 1 and got[0].latency_s > 0, "each request reports its batch's time"
    again = batched.generate(reqs)
    assert [r.texts for r in again] == [r.texts for r in got], "the same batches, seeded, give the same text"


def test_a_bad_request_in_a_batch_fails_alone(batched, exact):
    reqs = [raw(1, temperature=0, max_tokens=8), Request(prompt="", params=SamplingParams(temperature=0,
                                                                                          max_tokens=8)),
            raw(2, temperature=0, max_tokens=8), raw(3, temperature=0, max_tokens=8)]
    got = batched.generate(reqs)
    assert isinstance(got[1], Failure) and got[1].error
    want = exact.generate(reqs)
    assert isinstance(want[1], Failure)
    same_as_alone([got[i] for i in (0, 2, 3)], [want[i] for i in (0, 2, 3)])
    seen = sorted(i for i, _ in batched.iter_results(reqs))
    assert seen == [0, 1, 2, 3], "every request is yielded once"


def test_exact_seeds_gives_a_seeded_request_the_same_text_whatever_its_neighbours(batched, exact, tiny_model):
    a = chat(1, n=2, max_tokens=16, seed=11)
    first = exact.generate([chat(2, n=2, max_tokens=16, seed=3), a, chat(3, max_tokens=16, seed=4)])[1]
    second = exact.generate([a, chat(4, n=2, max_tokens=16, seed=5)])[0]
    assert rows(first) == rows(second)
    # A batch of one runs exactly as with exact_seeds; so does batch_size 1.
    assert rows(batched.generate_one(a)) == rows(first)
    one = make_engine("hf", str(tiny_model), batch_size=1)
    assert rows(one.generate([chat(5, max_tokens=16, seed=9), a])[1]) == rows(first)
    assert exact.describe()["exact_seeds"] is True and batched.describe()["batch_size"] == 4


def test_greedy_n_above_one_gives_n_copies_alone_too(exact):
    res = exact.generate_one(chat(1, temperature=0, max_tokens=8, n=3))
    assert len(res.completions) == 3
    assert all(row == rows(res)[0] for row in rows(res)), "greedy rows are copies"


def test_engine_flags_reach_the_hf_engine(tiny_model):
    p = argparse.ArgumentParser()
    add_engine_args(p)
    add_engine_args(p, prefix="fusor-", inherit=True, with_model=False)
    args = p.parse_args(["--model", "m", "--batch-size", "8", "--exact-seeds"])
    assert engine_options(args)["batch_size"] == 8 and engine_options(args)["exact_seeds"] is True
    assert engine_options(args, "fusor-")["batch_size"] == 8, "an unset prefixed flag is the main engine's"
    defaults = engine_options(p.parse_args(["--model", "m"]))
    assert defaults["batch_size"] is None and defaults["exact_seeds"] is False
    with pytest.raises(InputError, match="batch-size"):
        make_engine("hf", str(tiny_model), batch_size=0)


def test_caps_that_differ_share_one_batch_and_each_row_keeps_its_own(batched, exact, generate_calls):
    """A decoder's requests each carry what is left of its token budget: different max_tokens, one batch."""
    reqs = [raw(i, temperature=0, max_tokens=3 + 4 * i) for i in range(4)]
    got = batched.generate(reqs)
    assert generate_calls == [4]
    same_as_alone(got, exact.generate(reqs))
    for r, req in zip(got, reqs):
        assert all(c.tokens <= req.params.max_tokens and len(c.token_ids) == c.tokens for c in r.completions)
