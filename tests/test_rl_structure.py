"""The structured forward is exact: every branch gets the logits it would get alone after its ancestors.

Random trees in each format are built from random token ids around the real tag ids of the tiny
model; the packed / masked forward is compared with running each branch as its own plain
sequence (fp32, sdpa and eager). The trie-packed loss and its gradients are compared with the
unrolled computation (each sequence on its own, every shared token counted once).
"""
from __future__ import annotations

import random

import pytest
import torch

from reasoning.formats.tags import ALL_TAGS
from rl.structure import IGNORE, Structured, additive_mask, collate, tag_ids
from rl.structure import parallel_r1, parathinker, threadweaver

TOL = 1e-5


@pytest.fixture(scope="module")
def tiny(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    models = {attn: AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation=attn,
                                                         dtype=torch.float32).eval()
              for attn in ("sdpa", "eager")}
    tags = tag_ids(tokenizer, ALL_TAGS)
    plain = [i for i in range(3, len(tokenizer)) if i not in set(tags.values())
             and i not in tokenizer.all_special_ids]
    return models, tokenizer, tags, plain


def words(rng: random.Random, plain, low: int, high: int) -> list[int]:
    return [rng.choice(plain) for _ in range(rng.randint(low, high))]


def forward(model, example: Structured) -> torch.Tensor:
    """Logits (n, vocab) of one structured example run alone (batch of one, padded by collate)."""
    batch = collate([example], pad_id=0)
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     position_ids=batch["position_ids"], **({"seg_ids": batch["seg_ids"]} if "seg_ids" in batch
                                                           else {})).logits[0]


def plain_logits(model, ids: list[int], seg_ids: list[int] | None = None) -> torch.Tensor:
    extra = {"seg_ids": torch.tensor([seg_ids])} if seg_ids is not None else {}
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), **extra).logits[0]


# ---------------------------------------------------------------------------- Parallel-R1 Unseen

def r1_tree(rng, tags, plain, separators: bool):
    prompt = words(rng, plain, 3, 8)
    completion = words(rng, plain, 0, 4) + [tags["<Parallel>"]] + (words(rng, plain, 1, 2) if rng.random() < .5
                                                                   else [])
    paths = []
    for k in range(rng.randint(2, 4)):
        if k and separators:
            completion += words(rng, plain, 1, 2)
        start = len(prompt) + len(completion)
        completion += [tags["<Path>"]] + words(rng, plain, 1, 9) + [tags["</Path>"]]
        paths.append((start, len(prompt) + len(completion)))
    completion += [tags["</Parallel>"]] + words(rng, plain, 2, 6)
    return prompt, completion, paths


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_parallel_r1_unseen_paths_get_their_logits_alone(tiny, attn):
    models, _, tags, plain = tiny
    model = models[attn]
    rng = random.Random(1)
    for _ in range(6):
        prompt, completion, paths = r1_tree(rng, tags, plain, separators=True)
        example = parallel_r1.unseen(prompt, completion, tags)
        logits = forward(model, example)
        ids = example.input_ids
        context = ids[:paths[0][0]]  # everything before the block's first path
        for start, end in paths:
            alone = plain_logits(model, context + ids[start:end])[len(context):]
            assert (logits[start:end] - alone).abs().max() < TOL
        # positions: every path restarts right after the context; </Parallel> follows the longest
        assert [example.position_ids[s] for s, _ in paths] == [len(context)] * len(paths)
        longest = max(e - s for s, e in paths)
        close = ids.index(tags["</Parallel>"])
        assert example.position_ids[close] >= len(context) + longest


def test_parallel_r1_unseen_summary_does_not_depend_on_path_order(tiny):
    models, _, tags, plain = tiny
    rng = random.Random(2)
    for _ in range(4):
        prompt, completion, paths = r1_tree(rng, tags, plain, separators=False)
        ids = prompt + completion
        spans = [ids[s:e] for s, e in paths]
        swapped = ids[:paths[0][0]] + spans[1] + spans[0] + sum(spans[2:], []) + ids[paths[-1][1]:]
        tail = ids.index(tags["</Parallel>"])
        first = forward(models["eager"], parallel_r1.unseen(prompt, completion, tags))[tail:]
        second = forward(models["eager"], parallel_r1.unseen(prompt, swapped[len(prompt):], tags))[tail:]
        assert (first - second).abs().max() < TOL
        # ...which plain causal attention does not give (the check can fail)
        causal_first = plain_logits(models["eager"], ids)[tail:]
        causal_second = plain_logits(models["eager"], swapped)[tail:]
        assert (causal_first - causal_second).abs().max() > 1e-3


def test_parallel_r1_reference_switches_follow_the_reference_positions(tiny):
    _, _, tags, plain = tiny
    prompt = [plain[0]] * 3
    head, sep = [plain[1]], [plain[2]]
    path_one = [tags["<Path>"], plain[3], plain[3], tags["</Path>"]]  # 4 tokens
    path_two = [tags["<Path>"], plain[4], tags["</Path>"]]  # 3 tokens
    completion = [tags["<Parallel>"]] + head + path_one + sep + path_two + [tags["</Parallel>"], plain[5]]
    reference = parallel_r1.unseen(prompt, completion, tags, reference_positions=True)
    # <Parallel> at 3; head and separator at 0; each <Path> at 4; </Parallel> after the longest path end (7)
    assert reference.position_ids[3:] == [3, 0, 4, 5, 6, 7, 0, 4, 5, 6, 8, 9]
    principled = parallel_r1.unseen(prompt, completion, tags)
    # head continues at 4; paths restart after it at 5; the separator follows path one (9)
    assert principled.position_ids[3:] == [3, 4, 5, 6, 7, 8, 9, 5, 6, 7, 10, 11]
    # the separator is hidden from path two in the principled mask, seen in the reference's
    sep_at, path_two_at = 3 + 1 + 1 + 4, 3 + 1 + 1 + 4 + 1
    assert not principled.allowed[path_two_at, sep_at] and reference.allowed[path_two_at, sep_at]
    short_second = completion[:1] + path_two + path_one + [tags["</Parallel>"]]
    rl_quirk = parallel_r1.unseen(prompt, short_second, tags, second_path_is_last=True)
    assert rl_quirk.position_ids[-1] == 4 + len(path_one)  # after the second path, not the longest (first) one


# ---------------------------------------------------------------------------- ThreadWeaver trie

def tw_tree(rng, tags, plain):
    digits = plain[:9]
    prompt = words(rng, plain, 3, 6)
    completion = words(rng, plain, 0, 3)
    for _ in range(rng.randint(1, 2)):  # one or two blocks
        completion += [tags["<Parallel>"], tags["<Outlines>"]] + words(rng, plain, 1, 3) + [tags["</Outlines>"]]
        for k in range(rng.randint(2, 4)):
            completion += [tags["<Thread>"], plain[20], digits[k]] + words(rng, plain, 1, 7) + [tags["</Thread>"]]
            if rng.random() < 0.4:
                completion += [plain[21]]  # text between threads
        completion += words(rng, plain, 0, 2) + [tags["</Parallel>"]] + words(rng, plain, 1, 4)
    return prompt, completion


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_trie_packing_gives_every_sequence_its_own_logits(tiny, attn):
    models, _, tags, plain = tiny
    model = models[attn]
    rng = random.Random(3)
    for _ in range(5):
        prompt, completion = tw_tree(rng, tags, plain)
        trie = threadweaver.Trie()
        seqs = threadweaver.sequences(prompt, completion, tags)
        nodes = [trie.insert(ids, trained) for ids, trained in seqs]
        packed, node_of = trie.flatten()
        assert len(packed) < sum(len(ids) for ids, _ in seqs)  # shared tokens are stored once
        flat_of = {node: i for i, node in enumerate(node_of) if node >= 0}
        logits = forward(model, packed)
        for (ids, _), seq_nodes in zip(seqs, nodes):
            alone = plain_logits(model, ids)
            flat = torch.tensor([flat_of[n] for n in seq_nodes])
            assert (logits[flat] - alone).abs().max() < TOL
            assert [packed.position_ids[i] for i in flat.tolist()] == list(range(len(ids)))


def unrolled_loss(model, seqs, nodes, trie) -> torch.Tensor:
    """Each sequence alone; every trained trie node counted once (in the first sequence holding it)."""
    counted, total = set(), 0.0
    for (ids, _), seq_nodes in zip(seqs, nodes):
        logits = model(input_ids=torch.tensor([ids])).logits[0]
        for t in range(1, len(ids)):
            node = seq_nodes[t]
            if trie.trained[node] and node not in counted:
                counted.add(node)
                total = total + torch.nn.functional.cross_entropy(logits[t - 1:t], torch.tensor([ids[t]]),
                                                                  reduction="sum")
    return total


def packed_loss(model, packed: Structured) -> torch.Tensor:
    batch = collate([packed], pad_id=0)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   position_ids=batch["position_ids"]).logits[0]
    labels = batch["labels"][0]
    return torch.nn.functional.cross_entropy(logits[:-1], labels[1:], ignore_index=IGNORE, reduction="sum")


@pytest.mark.parametrize("inner", [False, True])
def test_trie_loss_and_gradients_equal_the_unrolled_ones(tiny, inner):
    models, _, tags, plain = tiny
    model = models["eager"]
    rng = random.Random(4 + inner)
    prompt, completion = tw_tree(rng, tags, plain)
    trie = threadweaver.Trie()
    seqs = threadweaver.sequences(prompt, completion, tags, train_inner_threads=inner)
    nodes = [trie.insert(ids, trained) for ids, trained in seqs]
    packed, _ = trie.flatten()
    params = [p for p in model.parameters()]
    model.zero_grad()
    reference = unrolled_loss(model, seqs, nodes, trie)
    reference.backward()
    reference_grads = [p.grad.clone() for p in params]
    model.zero_grad()
    loss = packed_loss(model, packed)
    loss.backward()
    assert abs(loss.item() - reference.item()) <= 1e-5 * abs(reference.item())
    worst = max((p.grad - g).abs().max().item() for p, g in zip(params, reference_grads))
    scale = max(g.abs().max().item() for g in reference_grads)
    assert worst <= 1e-5 * scale
    model.zero_grad()
    # the duplicate branch points carry no loss; trained tokens = trained trie nodes below the root
    assert packed.trained_tokens == sum(trie.trained[n] for n in range(len(trie.token)) if n not in
                                        trie.roots.values())


def test_inner_threads_are_context_unless_the_reference_switch_is_on(tiny):
    _, _, tags, plain = tiny
    prompt, completion = [plain[5]] * 2, [tags["<Parallel>"], tags["<Outlines>"], tags["</Outlines>"],
                                          tags["<Thread>"], plain[1], tags["</Thread>"],
                                          tags["<Thread>"], plain[2], tags["</Thread>"], tags["</Parallel>"]]
    whole, trained = threadweaver.sequences(prompt, completion, tags)[0]
    second = whole.index(plain[2])
    assert not trained[second] and trained[whole.index(plain[1])]
    assert threadweaver.sequences(prompt, completion, tags, train_inner_threads=True)[0][1][second]


# ---------------------------------------------------------------------------- ParaThinker

def pt_tree(rng, tags, plain, count):
    prompt = words(rng, plain, 3, 6)
    completion, paths = [], []
    for k in range(1, count + 1):
        start = len(prompt) + len(completion)
        completion += [tags[f"<think{k}>"]] + words(rng, plain, 1, 8) + [tags[f"</think{k}>"]]
        paths.append((start, len(prompt) + len(completion), k))
    completion += [tags["<summary>"]] + words(rng, plain, 2, 5) + [tags["</summary>"]]
    return prompt, completion, paths


@pytest.fixture(scope="module")
def thought_model(tiny_model):
    from transformers import AutoModelForCausalLM

    from reasoning.thought_embeddings import add_thought_embeddings, decoder_of

    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation="eager",
                                                 dtype=torch.float32).eval()
    add_thought_embeddings(model)
    torch.manual_seed(0)
    for layer in decoder_of(model).layers:  # non-zero tables, so a wrong segment id shows in the logits
        torch.nn.init.normal_(layer.self_attn.seg_embeddings.weight, std=0.5)
    return model


def test_parathinker_paths_get_their_logits_alone_with_their_embeddings(tiny, thought_model):
    _, _, tags, plain = tiny
    rng = random.Random(5)
    for _ in range(5):
        prompt, completion, paths = pt_tree(rng, tags, plain, rng.randint(2, 4))
        example = parathinker.structure(prompt, completion, tags)
        logits = forward(thought_model, example)
        ids = example.input_ids
        for start, end, k in paths:
            alone = plain_logits(thought_model, prompt + ids[start:end], [0] * len(prompt) + [k] * (end - start))
            assert (logits[start:end] - alone[len(prompt):]).abs().max() < TOL
            assert example.position_ids[start] == len(prompt)
        summary = ids.index(tags["<summary>"])
        assert example.position_ids[summary] == len(prompt) + max(e - s for s, e, _ in paths)
        # the wrong embedding row changes a path's logits (the check can fail)
        start, end, k = paths[0]
        wrong = plain_logits(thought_model, prompt + ids[start:end], [0] * len(prompt) + [k + 1] * (end - start))
        assert (logits[start:end] - wrong[len(prompt):]).abs().max() > 1e-3


def test_parathinker_summary_sees_every_path_in_any_order(tiny, thought_model):
    _, _, tags, plain = tiny
    rng = random.Random(6)
    prompt, completion, paths = pt_tree(rng, tags, plain, 3)
    ids = prompt + completion
    spans = [ids[s:e] for s, e, _ in paths]
    reordered = prompt + spans[2] + spans[0] + spans[1] + ids[paths[-1][1]:]
    summary = ids.index(tags["<summary>"])
    first = forward(thought_model, parathinker.structure(prompt, completion, tags))[summary:]
    second = forward(thought_model, parathinker.structure(prompt, reordered[len(prompt):], tags))[summary:]
    assert (first - second).abs().max() < TOL
    changed = list(ids)
    changed[paths[1][0] + 1] = plain[7] if changed[paths[1][0] + 1] != plain[7] else plain[8]
    third = forward(thought_model, parathinker.structure(prompt, changed[len(prompt):], tags))[summary:]
    assert (first - third).abs().max() > 1e-4


def test_parathinker_relabel_renames_two_paths_and_their_segments(tiny):
    _, _, tags, plain = tiny
    prompt, completion, _ = pt_tree(random.Random(7), tags, plain, 3)
    renamed = parathinker.relabel(completion, tags, random.Random(0), probability=1.0)
    numbers = [k for k in range(1, 9) if tags[f"<think{k}>"] in renamed]
    assert len(numbers) == 3 and {7, 8} <= set(numbers)
    assert all(tags[f"</think{k}>"] in renamed for k in numbers)
    example = parathinker.structure(prompt, renamed, tags)
    assert {7, 8} <= set(example.seg_ids)
    assert parathinker.relabel(completion, tags, random.Random(0), probability=0.0) == completion


# ---------------------------------------------------------------------------- collation

def test_padded_batches_match_single_examples_and_pad_rows_stay_finite(tiny):
    models, _, tags, plain = tiny
    rng = random.Random(8)
    examples = [parallel_r1.unseen(*r1_tree(rng, tags, plain, True)[:2], tags),
                threadweaver.pack(*tw_tree(rng, tags, plain), tags)]
    batch = collate(examples, pad_id=0)
    assert batch["attention_mask"].dtype == torch.float32 and batch["attention_mask"].dim() == 4
    with torch.no_grad():
        logits = models["eager"](input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                 position_ids=batch["position_ids"]).logits
    assert torch.isfinite(logits).all()
    for row, example in enumerate(examples):
        alone = forward(models["eager"], example)
        assert (logits[row, :len(example)] - alone).abs().max() < TOL


def test_additive_mask_is_float_zero_or_minimum():
    allowed = torch.tensor([[True, False], [True, True]])
    mask = additive_mask(allowed)
    assert mask.dtype == torch.float32
    assert mask[0, 0] == 0 and mask[0, 1] == torch.finfo(torch.float32).min
