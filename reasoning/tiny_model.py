"""Build a tiny random-weight Qwen3-style model that loads offline in transformers and vLLM.

Tests, the quickstart and the benches use it: there is no model hub here, and the users'
CI often has none either. The tokenizer is a byte-level BPE trained on text generated
below, with a ChatML template and every parallel-thinking tag as a single token: an ordinary
added token by default, or a special one with `special_tags=True` (`--special-tags`), as the
released ThreadWeaver (arXiv 2512.07843) and ParaThinker (arXiv 2509.04475) checkpoints
register theirs. Both variants of one seed have the same ids and weights: only the tokens'
special flag differs, so the same request gives the same tokens on either.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from reasoning import quiet
from reasoning.formats.tags import ALL_TAGS

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# ChatML, with {% generation %} around assistant text so TRL's assistant_only_loss works.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

WORDS = ("the answer is problem solve step first then so we add subtract multiply divide total each "
         "number sum product equals question final therefore compute check path summary thread outline "
         "parallel case value result apples cost price hours minutes speed distance area of and a to in").split()


def _corpus(n_lines: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14)))
        lines.append(f"Question: what is {a} + {b}? {words}. Final Answer: {a + b}. \\boxed{{{a + b}}}")
        lines.append(f"{words.capitalize()}, {a} * {b} = {a * b}; x^2 + {a}x - {b} = 0 \\frac{{{a}}}{{{b}}}.")
    return lines


def _arith_corpus(n_problems: int, seed: int) -> list[str]:
    """Arith problems in chat form with the symbolic teacher's solutions and traces (tokenizer training)."""
    from reasoning.engines.symbolic import ArithTeacher, sequential_solution
    from reasoning.tasks.arith import generate

    lines = []
    teacher = ArithTeacher()
    for level in (1, 2, 3):
        for problem in generate(level, n_problems // 3, "train", seed):
            lines.append(f"<|im_start|>user\nSolve the following problem. Problem: {problem.question}<|im_end|>\n"
                         "<|im_start|>assistant\n")
            lines.append(sequential_solution(problem, problem.answer, "boxed"))
            for style in ("threadweaver", "parallel_r1", "parathinker"):
                lines.append(teacher.full(problem, problem.answer, "final_answer", style, False))
    return lines


# Measured presets (`parafuse model tiny --preset NAME`): arith is the ~1M-parameter Qwen3-style model
# that learns the arith task on a CPU in minutes (4 layers, head_dim 32). Its BPE splits every digit and has
# room for every merge its corpus offers (~600 tokens), so the task's words are whole tokens: a level-1 SFT row
# is ~64 tokens instead of ~110 with a 384-token vocabulary, and a training step ~1.5x faster.
PRESETS = {
    "default": dict(vocab_size=2048, hidden_size=128, layers=2, heads=4, kv_heads=2, intermediate_size=256),
    "arith": dict(vocab_size=640, hidden_size=128, layers=4, heads=4, kv_heads=2, intermediate_size=512),
}


def build_tiny_model(out_dir: str | Path, vocab_size: int = 2048, hidden_size: int = 128, layers: int = 2,
                     heads: int = 4, kv_heads: int = 2, max_positions: int = 4096, seed: int = 0,
                     preset: str = "default", intermediate_size: int | None = None,
                     special_tags: bool = False) -> Path:
    """Write model + tokenizer to `out_dir` and return it. head_dim = hidden/heads must be >= 32.

    `preset="arith"` builds the arith model: its sizes (they override the size arguments), a BPE
    that splits every digit into its own token, trained on arith problems and solutions.

    `special_tags=True` registers every tag as a special token, the authors' way
    (`add_special_tokens({"additional_special_tokens": tags})`), to test that engines keep
    the tags in their text when a plain `skip_special_tokens=True` decode would delete them.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if preset != "default":
        sizes = PRESETS[preset]
        vocab_size, hidden_size, layers = sizes["vocab_size"], sizes["hidden_size"], sizes["layers"]
        heads, kv_heads, intermediate_size = sizes["heads"], sizes["kv_heads"], sizes["intermediate_size"]
    import torch
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    head_dim = hidden_size // heads
    if head_dim < 32:
        raise ValueError(f"head_dim {head_dim} < 32: vLLM's CPU attention needs head_dim >= 32")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    if preset == "arith":  # every digit its own token: numbers are read digit by digit
        bpe.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False)])
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(ALL_TAGS), min_frequency=1, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(_arith_corpus(1500, seed) if preset == "arith" else _corpus(1200, seed), trainer)
    bpe.add_tokens([AddedToken(t, special=False, normalized=False) for t in ALL_TAGS])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  bos_token=None, unk_token=None)
    tok.chat_template = CHAT_TEMPLATE
    if special_tags:  # the tags are added tokens already: this flags them special and keeps their ids
        tok.add_special_tokens({"additional_special_tokens": list(ALL_TAGS)})
    for t in ALL_TAGS:
        assert len(tok.encode(t, add_special_tokens=False)) == 1, t

    torch.manual_seed(seed)
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=hidden_size,
                      intermediate_size=intermediate_size or 2 * hidden_size,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                      head_dim=head_dim, max_position_embeddings=max_positions, tie_word_embeddings=True,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None,
                      dtype="float32")
    model = Qwen3ForCausalLM(cfg)
    # do_sample=True: `transformers serve` decodes greedily unless the model asks to sample.
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                                               do_sample=True, temperature=1.0, top_p=1.0, top_k=0)
    with quiet.no_library_progress():  # a bar for a file written in milliseconds
        model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "parafuse_tiny.json").write_text(json.dumps(
        {"built_by": "parafuse model tiny", "preset": preset, "seed": seed,
         "params": sum(p.numel() for p in model.parameters()), "special_tags": special_tags,
         "tags": list(ALL_TAGS)}, indent=1))
    return out
