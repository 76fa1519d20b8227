"""The generation store: keys, append-only rows, resume, failures, crash-cut tails."""
from __future__ import annotations

import json

import pytest

from reasoning.jsonl import read_jsonl
from reasoning.store import GenerationStore, request_key
from reasoning.types import Completion, Failure, InputError, Request, Result, SamplingParams


def req(text="hi", **kw) -> Request:
    return Request(messages=({"role": "user", "content": text},), params=SamplingParams(**kw))


def res(text="ok") -> Result:
    return Result([Completion(text, 1, "stop")], prompt_tokens=3, latency_s=0.1)


def test_key_changes_with_every_part_of_the_request():
    base = request_key("hf", "m", req())
    assert request_key("hf", "m", req()) == base
    assert request_key("vllm", "m", req()) != base
    assert request_key("hf", "m2", req()) != base
    assert request_key("hf", "m", req("other")) != base
    assert request_key("hf", "m", req(temperature=0.5)) != base
    assert request_key("hf", "m", Request(messages=req().messages, key_extra="tpl@abc")) != base
    # the id is a label, not content: renaming rows keeps their results
    assert request_key("hf", "m", Request(messages=req().messages, id="x")) == base


def test_results_survive_reopen_and_failures_are_retried(tmp_path):
    path = tmp_path / "s.jsonl"
    with GenerationStore(path) as s:
        s.put("a", req("a"), res("A"))
        s.put("b", req("b"), Failure("HTTP 500"))
    with GenerationStore(path) as s:
        assert "a" in s and "b" not in s
        assert s.result("a").texts == ["A"]
        assert set(s.failed) == {"b"}
        s.put("b", req("b"), res("B"))
    with GenerationStore(path) as s:
        assert "b" in s and not s.failed
        s.compact(["b", "a"])
    rows = read_jsonl(path)
    assert [r["key"] for r in rows] == ["b", "a"] and all(r["status"] == "ok" for r in rows)


def test_a_line_cut_by_a_kill_is_dropped_and_the_file_stays_valid(tmp_path):
    path = tmp_path / "s.jsonl"
    with GenerationStore(path) as s:
        s.put("a", req("a"), res())
    with open(path, "a") as f:
        f.write('{"key": "b", "status": "ok", "res')  # what a SIGKILL mid-write leaves
    with GenerationStore(path) as s:
        assert "a" in s and "b" not in s
        s.put("c", req("c"), res())
    lines = path.read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["a", "c"]


def test_malformed_line_in_the_middle_names_file_and_line(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"key": "a", "status": "ok"}\nnot json\n{"key": "b", "status": "ok"}\n')
    with pytest.raises(InputError, match=r"s\.jsonl:2: not valid JSON"):
        GenerationStore(path)


def test_a_file_that_is_not_a_store_is_refused(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "hi"}\n')
    with pytest.raises(InputError, match="not a generation-store row"):
        GenerationStore(path)


def test_jsonl_rows_holding_unicode_line_breaks_read_back_whole(tmp_path):
    """A row written with ensure_ascii=False may hold \\u2028, \\x85 or \\x1c in a string (a random model's
    text does); only "\\n" ends a JSONL line."""
    rows = [{"text": "a\u2028b\x85c\x1cd"}, {"text": "second"}]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert read_jsonl(path) == rows
