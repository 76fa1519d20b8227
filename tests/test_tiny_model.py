"""The tiny local model: offline loading, tags as single tokens (ordinary, or special in the --special-tags
variant), chat template."""
from __future__ import annotations

from transformers import AutoModelForCausalLM, AutoTokenizer

from reasoning.formats.tags import ALL_TAGS, PARALLEL_R1, PARATHINKER, THREADWEAVER


def test_every_format_tag_is_one_token_that_survives_skip_special_tokens(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    assert set(PARALLEL_R1) | set(THREADWEAVER) | set(PARATHINKER) <= set(ALL_TAGS)
    for tag in ALL_TAGS:
        ids = tok.encode(tag, add_special_tokens=False)
        assert len(ids) == 1, tag
        assert tok.decode(ids, skip_special_tokens=True) == tag
    text = "a<Parallel><Path>x</Path><Path>y</Path></Parallel><Summary>z</Summary>"
    assert tok.decode(tok.encode(text, add_special_tokens=False), skip_special_tokens=True) == text


def test_model_loads_offline_and_is_qwen3_with_head_dim_for_vllm(tiny_model):
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    cfg = model.config
    assert cfg.model_type == "qwen3"
    assert cfg.head_dim >= 32
    assert cfg.vocab_size == len(AutoTokenizer.from_pretrained(tiny_model))
    assert model.generation_config.do_sample is True  # transformers serve samples only if asked


def test_chat_template_marks_assistant_text_for_trl(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "<Path>yo</Path>"}]
    out = tok.apply_chat_template(msgs, return_dict=True, return_assistant_tokens_mask=True)
    mask = out["assistant_masks"]
    assistant_ids = [i for i, m in zip(out["input_ids"], mask) if m]
    assert tok.decode(assistant_ids) == "<Path>yo</Path><|im_end|>"
    prompt = tok.apply_chat_template(msgs[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")


def test_cli_builds_a_model_that_generates(tmp_path):
    from parafuse.cli import main
    from reasoning.engines import make_engine
    from reasoning.types import Request, SamplingParams

    assert main(["model", "tiny", str(tmp_path / "m"), "--seed", "3"]) == 0
    eng = make_engine("hf", str(tmp_path / "m"))
    r = eng.generate_one(Request(prompt="Question:", params=SamplingParams(max_tokens=5, temperature=0)))
    assert r.completions[0].tokens == 5


def test_cli_refuses_a_file_an_existing_model_and_impossible_sizes(tmp_path, capsys):
    from parafuse.cli import main

    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["model", "tiny", str(afile)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["model", "tiny", str(tmp_path / "bad"), "--hidden-size", "100"]) == 2
    assert "head_dim 25 < 32" in capsys.readouterr().err  # a message, not a traceback
    assert main(["model", "tiny", str(tmp_path / "m")]) == 0
    before = (tmp_path / "m" / "model.safetensors").read_bytes()
    assert main(["model", "tiny", str(tmp_path / "m"), "--seed", "5"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == before  # nothing overwritten
    assert main(["model", "tiny", str(tmp_path / "m"), "--seed", "5", "--force"]) == 0
    assert (tmp_path / "m" / "model.safetensors").read_bytes() != before


def test_special_tags_variant_flags_the_tags_special_with_the_same_ids_and_weights(tiny_model, tiny_model_special):
    import json

    from safetensors.torch import load_file

    plain, special = AutoTokenizer.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(tiny_model_special)
    assert plain.get_vocab() == special.get_vocab()
    flags = {t.content: t.special for t in special.added_tokens_decoder.values()}
    assert all(flags[tag] for tag in ALL_TAGS) and set(ALL_TAGS) <= set(special.all_special_tokens)
    assert not any(t.special for t in plain.added_tokens_decoder.values() if t.content in ALL_TAGS)
    a, b = load_file(tiny_model / "model.safetensors"), load_file(tiny_model_special / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert json.loads((tiny_model_special / "parafuse_tiny.json").read_text())["special_tags"] is True


def test_cli_builds_the_special_tags_variant(tmp_path):
    from parafuse.cli import main

    assert main(["model", "tiny", str(tmp_path / "m"), "--special-tags"]) == 0
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    ids = tok.encode("x<Parallel>", add_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=True) == "x"  # the variant deletes tags in a plain decode
