"""ParaThinker exact decoding on hf: what the loop samples is what the training structure predicts.

A tiny model gets non-zero thought-embedding tables and is saved as a training output would be
(weights + side file). The hf engine loads it, the ParaThinker decoder takes the exact path, and
the decoded ids are then run through the *training* layout (`rl.structure.parathinker`: shared
path positions, two-phase mask, segment ids) in one forward: at every sampled position the
greedy choice of that forward must be the token the decoder sampled. The stock approximation
(`exact=False`) re-reads paths at sequential positions and is not consistent with it.
"""
from __future__ import annotations

import asyncio

import pytest
import torch

from reasoning.decoders.parathinker import ParaThinkerConfig, decode
from reasoning.formats.tags import ALL_TAGS
from rl.structure import collate, tag_ids
from rl.structure import parathinker as structure

PROMPT = [{"role": "user", "content": "What is 3 + 4? Think in parallel."}]


@pytest.fixture(scope="module")
def thought_engine(tiny_model, tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reasoning.engines import make_engine
    from reasoning.thought_embeddings import add_thought_embeddings, decoder_of
    from rl.models import save_model_folder

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    add_thought_embeddings(model)
    torch.manual_seed(1)
    for layer in decoder_of(model).layers:
        torch.nn.init.normal_(layer.self_attn.seg_embeddings.weight, std=1.0)
    folder = tmp_path_factory.mktemp("thought") / "model"
    save_model_folder(model, AutoTokenizer.from_pretrained(tiny_model), folder)
    engine = make_engine("hf", str(folder))
    yield engine
    engine.close()


def replay_ids(result, engine, cfg):
    """(prompt ids, completion ids) of the decoded trace, from the sampled ids (stop tags -> closers)."""
    tok = engine.tokenizer
    prompt = tok.encode(engine.render_chat(PROMPT), add_special_tokens=False)
    completion = []
    generated = [s for s in result.segments if s.source == "generated"]
    for k, seg in enumerate(generated[:cfg.num_paths], start=1):
        ids = list(seg.token_ids)
        if ids and (seg.stop_string is not None or ids[-1] in engine.eos_ids or result.requests[k - 1][
                "stop_string"] is not None):
            ids = ids[:-1]
        completion += tok.encode(f"<think{k}>", add_special_tokens=False) + ids + tok.encode(f"</think{k}>",
                                                                                           add_special_tokens=False)
    completion += tok.encode("<summary>" + cfg.summary_prefix, add_special_tokens=False)
    completion += list(generated[cfg.num_paths].token_ids)
    return prompt, completion, [len(s.token_ids) for s in generated]


def greedy_agreement(engine, prompt, completion, cfg) -> float:
    """Share of sampled tokens that the training-layout forward also picks greedily."""
    tags = tag_ids(engine.tokenizer, ALL_TAGS)
    example = structure.structure(prompt, completion, tags)
    batch = collate([example], pad_id=0)
    with torch.no_grad():
        logits = engine.lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           position_ids=batch["position_ids"], seg_ids=batch["seg_ids"]).logits[0]
    ids = example.input_ids
    opener_ids = {tags[f"<think{k}>"] for k in range(1, 9)} | {tags[f"</think{k}>"] for k in range(1, 9)}
    lead = len(engine.tokenizer.encode("<summary>" + cfg.summary_prefix, add_special_tokens=False))
    summary_at = ids.index(tags["<summary>"])
    checked = agree = 0
    for i in range(len(prompt) + 1, len(ids)):
        inserted = ids[i] in opener_ids or summary_at <= i < summary_at + lead
        previous_is_closer = ids[i - 1] in {tags[f"</think{k}>"] for k in range(1, 9)}
        if inserted or previous_is_closer:
            continue
        # the logits that predicted token i come from the token before it in its own segment
        source = i - 1
        checked += 1
        agree += int(logits[source].argmax().item() == ids[i])
    return agree / checked


def test_exact_decoding_samples_what_the_training_layout_predicts(thought_engine):
    cfg = ParaThinkerConfig(num_paths=3, max_path_tokens=10, max_summary_tokens=8, summary_prefix="",
                            stop_on_any_end_tag=False)
    cfg.sampling.temperature = 0.0
    result = asyncio.run(decode(thought_engine, PROMPT, cfg, key="exact"))
    assert all(r.get("exact") for r in result.requests)
    prompt, completion, lengths = replay_ids(result, thought_engine, cfg)
    assert greedy_agreement(thought_engine, prompt, completion, cfg) == 1.0
    # the paths differ only through their thought embeddings (same prompt, greedy): they must differ
    paths = [s.text for s in result.segments if s.source == "generated"][:3]
    assert len(set(paths)) > 1
    assert result.total_tokens == sum(lengths)
    assert result.generated_critical_path_tokens == max(lengths[:3]) + lengths[3]
    # the trace is a valid ParaThinker layout with the decoder's tags around each path
    assert result.text.startswith("<think1>") and "</think3><summary>" in result.text


def test_the_stock_approximation_is_not_the_training_layout(thought_engine):
    cfg = ParaThinkerConfig(num_paths=3, max_path_tokens=10, max_summary_tokens=8, summary_prefix="",
                            stop_on_any_end_tag=False, exact=False)
    cfg.sampling.temperature = 0.0
    result = asyncio.run(decode(thought_engine, PROMPT, cfg, key="stock"))
    assert not any(r.get("exact") for r in result.requests)
    prompt, completion, _ = replay_ids(result, thought_engine, cfg)
    assert greedy_agreement(thought_engine, prompt, completion, cfg) < 1.0


def test_exact_first_finish_stops_every_path_at_the_first_end(thought_engine):
    """Path 1 ends (a stop string it writes) at step 3: the other rows stop at that step, keep the 3 tokens
    they sampled (the same as without First-Finish: rows are independent), and get no closing tag."""
    from reasoning.decoders.parathinker_exact import ExactParaThinker

    loop = ExactParaThinker(thought_engine)
    prompt = thought_engine.render_chat(PROMPT)
    opens, closes = ["<think1>", "<think2>", "<think3>"], ["</think1>", "</think2>", "</think3>"]
    args = dict(path_cap=8, summary_lead="<summary>", end_summary="</summary>", summary_cap=4, temperature=0.0,
                top_p=1.0, seed=0)
    free, _, _ = loop.run(prompt, opens, closes, [(c,) for c in closes], **args)
    stop1 = thought_engine.tokenizer.decode(free[0].ids[:3], skip_special_tokens=False)[-3:]
    stops = [(stop1,), (closes[1],), (closes[2],)]
    paths, summary, _ = loop.run(prompt, opens, closes, stops, first_finish=True, **args)
    assert paths[0].stop_string == stop1 and not paths[0].cut
    n = len(paths[0].ids)
    assert n <= 3 and [p.cut for p in paths[1:]] == [True, True]
    assert [p.ids for p in paths[1:]] == [f.ids[:n] for f in free[1:]]
    assert summary.ids, "the summary is sampled over the cut paths"
