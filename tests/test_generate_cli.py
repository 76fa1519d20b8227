"""`parafuse reason generate` end to end on the hf engine, and its answers to bad input."""
from __future__ import annotations

import json
import re

import pytest

from parafuse.cli import main
from reasoning.jsonl import read_jsonl


def write(path, lines):
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def run(capsys, *argv):
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_generate_writes_one_row_per_prompt_and_resumes(tmp_path, tiny_model, capsys):
    inp = write(tmp_path / "in.jsonl", [
        {"id": "a", "prompt": "What is 2 + 3?"},
        {"id": "b", "messages": [{"role": "user", "content": "Hi"}], "params": {"max_tokens": 3}},
        {"id": "c", "raw": "Question: what is"},
    ])
    out = tmp_path / "out.jsonl"
    args = ["reason", "generate", "--model", str(tiny_model), "--input", str(inp), "--out", str(out),
            "-n", "2", "--max-tokens", "6", "--seed", "0", "--no-progress"]
    code, _, err = run(capsys, *args)
    assert code == 0, err
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert all(r["status"] == "ok" and len(r["result"]["completions"]) == 2 for r in rows)
    assert rows[1]["request"]["params"]["max_tokens"] == 3
    assert all(c["tokens"] <= 3 for c in rows[1]["result"]["completions"])
    assert rows[2]["request"]["prompt"] == "Question: what is"
    seeds = {r["request"]["params"]["seed"] for r in rows}
    assert len(seeds) == 3, "each request gets its own seed derived from --seed and its id"
    assert "3 requests: 3 ok (0 already in the store)" in err and "completion tokens" in err
    before = out.read_text()
    code, _, err = run(capsys, *args)
    assert code == 0 and "3 ok (3 already in the store)" in err
    assert out.read_text() == before


def test_template_builds_the_prompt_from_fields(tmp_path, tiny_model, capsys):
    inp = write(tmp_path / "in.jsonl", [{"question": "What is 7 * 6?", "answer": "42"}])
    out = tmp_path / "out.jsonl"
    code, _, err = run(capsys, "reason", "generate", "--model", str(tiny_model), "--input", str(inp),
                       "--out", str(out), "--template", "math/boxed", "--max-tokens", "2", "--no-progress")
    assert code == 0, err
    row = read_jsonl(out)[0]
    assert "What is 7 * 6?" in row["request"]["messages"][0]["content"]
    assert row["request"]["key_extra"].startswith("math/boxed@")


@pytest.mark.parametrize("lines, message", [
    ([{"prompt": "ok"}, "{not json"], r"in\.jsonl:2: not valid JSON"),
    ([{"prompt": "ok"}, {"question": "no prompt field"}], r"in\.jsonl:2: missing field.*found fields: question"),
    ([{"messages": "hello"}], r"in\.jsonl:1: field `messages` must be a non-empty list"),
    ([{"messages": [{"content": "no role"}]}], r"in\.jsonl:1: message 0 needs `role` and `content`"),
    ([{"prompt": "x", "params": {"temprature": 1}}], r"in\.jsonl:1: field `params`: unknown sampling params"),
    ([{"prompt": "x", "params": {"n": 0}}], r"in\.jsonl:1: field `params`: sampling param n must be >= 1"),
])
def test_bad_input_lines_are_named(tmp_path, tiny_model, capsys, lines, message):
    inp = write(tmp_path / "in.jsonl", lines)
    code, _, err = run(capsys, "reason", "generate", "--model", str(tiny_model), "--input", str(inp),
                       "--out", str(tmp_path / "o.jsonl"), "--no-progress")
    assert code == 2
    assert re.search(message, err), err


def test_template_missing_variable_names_line_template_and_variable(tmp_path, tiny_model, capsys):
    inp = write(tmp_path / "in.jsonl", [{"question": "a"}, {"problem": "b"}])
    code, _, err = run(capsys, "reason", "generate", "--model", str(tiny_model), "--input", str(inp),
                       "--out", str(tmp_path / "o.jsonl"), "--template", "math/boxed")
    assert code == 2
    assert "in.jsonl:2" in err and "'math/boxed' needs variable 'question'" in err


def test_unknown_engine_lists_the_engines(tmp_path, tiny_model, capsys):
    inp = write(tmp_path / "in.jsonl", [{"prompt": "x"}])
    code, _, err = run(capsys, "reason", "generate", "--engine", "tgi", "--model", str(tiny_model),
                       "--input", str(inp), "--out", str(tmp_path / "o.jsonl"))
    assert code == 2 and "unknown engine 'tgi'; choose one of: hf, vllm, openai" in err


@pytest.mark.parametrize("engine", ["hf", "vllm"])
def test_missing_model_path_says_what_to_pass(tmp_path, capsys, engine):
    inp = write(tmp_path / "in.jsonl", [{"prompt": "x"}])
    code, _, err = run(capsys, "reason", "generate", "--engine", engine, "--model", str(tmp_path / "nope"),
                       "--input", str(inp), "--out", str(tmp_path / "o.jsonl"))
    assert code == 2
    assert f"model path {tmp_path / 'nope'} does not exist" in err and "parafuse model tiny" in err


def test_missing_input_file_and_empty_input(tmp_path, tiny_model, capsys):
    code, _, err = run(capsys, "reason", "generate", "--model", str(tiny_model), "--input",
                       str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "o.jsonl"))
    assert code == 2 and "none.jsonl does not exist" in err
    empty = write(tmp_path / "empty.jsonl", [])
    code, _, err = run(capsys, "reason", "generate", "--model", str(tiny_model), "--input", str(empty),
                       "--out", str(tmp_path / "o.jsonl"))
    assert code == 2 and "has no rows" in err


def test_vllm_engine_passes_parallelism_settings_through(monkeypatch, tiny_model):
    """TP/DP cannot run on a CPU; check the settings reach vLLM's LLM unchanged."""
    import vllm

    seen = {}

    class FakeLLM:
        def __init__(self, **kw):
            seen.update(kw)

        def get_tokenizer(self):
            return None

    monkeypatch.setattr(vllm, "LLM", FakeLLM)
    from reasoning.engines import make_engine

    eng = make_engine("vllm", str(tiny_model), tensor_parallel_size=4, data_parallel_size=2, max_model_len=999)
    assert seen["tensor_parallel_size"] == 4 and seen["data_parallel_size"] == 2 and seen["max_model_len"] == 999
    assert eng.describe()["tensor_parallel_size"] == 4
