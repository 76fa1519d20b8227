"""Fusion-of-N data: teacher specs (`parse_teacher`) and the engines `parafuse synth fusion` builds
for its teachers and fusor (one per model, and another where a teacher's options differ).
"""
from __future__ import annotations

import re

import pytest
from fusion_pool import cli_base, counting_factory, read_jsonl, run_cli, sum_rows, write_jsonl

from reasoning.types import InputError
from synthesis.fusion_data import TeacherSpec, parse_teacher


# ---------------------------------------------------------------------------- parse_teacher


def test_teacher_spec_reads_engine_model_urls_and_sample_count():
    assert parse_teacher("openai:Qwen/Qwen3-8B@http://h:8000/v1*2") == TeacherSpec(
        "openai", "Qwen/Qwen3-8B", ("http://h:8000/v1",), 2)
    assert parse_teacher("hf:/some/path") == TeacherSpec("hf", "/some/path", None, 1)
    assert parse_teacher("  vllm:meta-llama/Llama-3.1-8B-Instruct*3 ") == TeacherSpec(
        "vllm", "meta-llama/Llama-3.1-8B-Instruct", None, 3)


def test_teacher_spec_splits_several_comma_separated_urls():
    t = parse_teacher("openai:m@http://a:8000/v1,http://b:8001/v1*4")
    assert t.engine == "openai" and t.model == "m"
    assert t.base_url == ("http://a:8000/v1", "http://b:8001/v1")
    assert t.n == 4


@pytest.mark.parametrize("spec", [
    "bogus:some-model",  # unknown engine
    "bogus",  # no engine at all
    "hf:",  # missing model
    "openai:@http://h:8000/v1",  # missing model before the URL
    "hf:/some/path*0",  # zero samples
    "openai:Qwen/Qwen3-8B",  # openai needs a server
    "openai:Qwen/Qwen3-8B*2",
])
def test_bad_teacher_spec_is_an_input_error_naming_the_spec(spec):
    with pytest.raises(InputError) as e:
        parse_teacher(spec)
    assert repr(spec) in str(e.value)


def test_zero_sample_count_error_says_what_is_wrong():
    with pytest.raises(InputError, match=r">= 1"):
        parse_teacher("hf:/some/path*0")


@pytest.mark.parametrize("spec", ["openai:Qwen/Qwen3-8B", "openai:Qwen/Qwen3-8B*2"])
def test_openai_teacher_without_url_suggests_a_spec_that_parses(spec):
    with pytest.raises(InputError) as e:
        parse_teacher(spec)
    suggestion = re.search(r"e\.g\. (\S+)", str(e.value))
    assert suggestion, str(e.value)
    fixed = parse_teacher(suggestion.group(1))  # the fix the message offers must be a valid spec
    assert fixed.model == "Qwen/Qwen3-8B" and fixed.base_url == ("http://host:8000/v1",)
    assert fixed.n == (2 if spec.endswith("*2") else 1), "the fix keeps the sample count"


def test_teacher_spec_carries_engine_options_of_its_own():
    t = parse_teacher("vllm:Qwen/Qwen3-8B*2,max-model-len=8192,tensor_parallel_size=2,enforce-eager=true")
    assert (t.engine, t.model, t.n) == ("vllm", "Qwen/Qwen3-8B", 2)
    assert dict(t.options) == {"max_model_len": 8192, "tensor_parallel_size": 2, "enforce_eager": True}
    t = parse_teacher("openai:m@http://a:8000/v1,http://b:8001/v1,max-concurrency=8")
    assert t.base_url == ("http://a:8000/v1", "http://b:8001/v1") and dict(t.options) == {"max_concurrency": 8}
    assert parse_teacher("symbolic:arith-teacher:plain:0.3").options == ()


@pytest.mark.parametrize("spec, message", [
    ("vllm:M,max-model-len=lots", "invalid int value"),
    ("vllm:M,no-such-option=1", "'no-such-option' is not an engine option"),
    ("vllm:M,base-url=http://h:8000/v1", "its server goes after '@'"),
    ("vllm:M,enforce-eager=maybe", "true or false"),
])
def test_a_bad_teacher_option_is_an_input_error_naming_the_spec(spec, message):
    with pytest.raises(InputError) as e:
        parse_teacher(spec)
    assert repr(spec) in str(e.value) and message in str(e.value)


# ---------------------------------------------------------------------------- the CLI


def test_cli_builds_one_engine_for_a_model_that_teaches_and_fuses(tmp_path, tiny_model, monkeypatch, capsys):
    """`--teacher vllm:M*2 --engine vllm --model M` loads M once, and the teacher gets --max-model-len."""
    built = counting_factory(monkeypatch)
    data = write_jsonl(tmp_path / "in.jsonl", sum_rows()[:1])
    code, err = run_cli(capsys, "synth", "fusion", "--input", data, "--teacher", f"vllm:{tiny_model}*2",
                        "--engine", "vllm", "--model", tiny_model, "--max-model-len", 1024, "--out", tmp_path / "o",
                        "--no-progress")
    assert code == 0, err
    [engine] = built
    assert engine["kind"] == "vllm" and engine["options"]["max_model_len"] == 1024
    assert engine["closed"] == 1
    [row] = read_jsonl(tmp_path / "o" / "data" / "train.jsonl")
    assert len(row["candidates"]) == 2 and row["fused"].endswith("\\boxed{12}")


def test_cli_teacher_options_override_the_commands_and_make_another_engine(tmp_path, tiny_model, monkeypatch,
                                                                           capsys):
    built = counting_factory(monkeypatch)
    data = write_jsonl(tmp_path / "in.jsonl", sum_rows()[:1])
    code, err = run_cli(capsys, "synth", "fusion", "--input", data,
                        "--teacher", f"vllm:{tiny_model}*2,max-model-len=512", "--teacher", f"vllm:{tiny_model}",
                        "--teacher", "symbolic:arith-teacher",
                        "--engine", "vllm", "--model", tiny_model, "--max-model-len", 1024, "--dtype", "float32",
                        "--out", tmp_path / "o", "--no-progress")
    assert code == 0, err
    by_len = {(e["kind"], e["options"]["max_model_len"]): e for e in built}
    assert sorted(by_len) == [("symbolic", 1024), ("vllm", 512), ("vllm", 1024)]  # the 2nd teacher is the fusor's
    assert all(e["options"]["dtype"] == "float32" for e in built) and all(e["closed"] == 1 for e in built)
    [row] = read_jsonl(tmp_path / "o" / "data" / "train.jsonl")
    assert len(row["candidates"]) == 4


def test_cli_refuses_a_bad_teacher_spec(tmp_path, tiny_model, capsys):
    data = write_jsonl(tmp_path / "in.jsonl", sum_rows())
    code, err = run_cli(capsys, *cli_base(tmp_path, tiny_model, data), "--teacher", "bogus")
    assert code == 2 and "'bogus'" in err


def test_cli_requires_a_teacher(tmp_path, tiny_model, capsys):
    data = write_jsonl(tmp_path / "in.jsonl", sum_rows())
    code, err = run_cli(capsys, *cli_base(tmp_path, tiny_model, data))
    assert code == 2 and "--teacher" in err
