"""Seed pools from the local data layout, and the Hub upload of a finished dataset folder."""
from __future__ import annotations

import json

import pytest

from reasoning.types import InputError
from synthesis.output import push_to_hub, write_card
from synthesis.sources import load_pool


def write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_named_seed_pools_read_the_local_layout_and_their_golds(tmp_path):
    write(tmp_path / "gsm8k" / "train.jsonl", [{"question": "Ann has 1,200 pens. How many?",
                                               "answer": "She has 1,200.\n#### 1,200"}])
    write(tmp_path / "math" / "train.jsonl", [
        {"problem": "Compute $\\frac{1}{2}+\\frac{1}{2}$.", "level": "Level 1", "type": "Algebra",
         "solution": "It is $\\boxed{\\frac{2}{2}}$, i.e. $\\boxed{1}$."},
        {"problem": "Say nothing.", "level": "Level 2", "type": "Algebra", "solution": "No box here."}])
    gsm = load_pool("gsm8k-train", tmp_path)
    assert [p.gold for p in gsm] == ["1200"] and gsm[0].benchmark == "gsm8k-train"
    assert gsm[0].meta["solution"] == "She has 1,200.\n#### 1,200", "the worked solution, for --include-originals"
    math = load_pool("math-train", tmp_path)
    assert math[0].gold == "1" and math[0].meta["subject"] == "Algebra" and math[0].meta["level"] == 1
    assert math[0].meta["solution"].startswith("It is $\\boxed")
    assert math[1].gold is None and "no 'answer' and no \\boxed{}" in math[1].gold_error


def test_unknown_input_names_the_pools_and_the_file_option(tmp_path):
    with pytest.raises(InputError, match="(?s)gsm8k-train.*math-train.*--question-field"):
        load_pool("gsm8k-test-typo", tmp_path)
    with pytest.raises(InputError, match="math/train.jsonl"):
        load_pool("math-train", tmp_path / "missing")


class FakeApi:
    """Records what would go to the Hub; the real HfApi needs the network."""

    calls: list = []

    def __init__(self, token=None):
        FakeApi.calls.append(("init", token))

    def create_repo(self, repo_id, **kw):
        FakeApi.calls.append(("create_repo", repo_id, kw))

    def upload_folder(self, **kw):
        FakeApi.calls.append(("upload_folder", kw))
        return type("Info", (), {"commit_url": f"https://hf.co/datasets/{kw['repo_id']}/commit/1"})()


def test_push_uploads_only_the_card_and_data_as_a_dataset_repo(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", "tok")
    FakeApi.calls = []
    write_card(tmp_path, "T", "body", ["x"], {"a": 1})
    url = push_to_hub(tmp_path, "me/data", private=True)
    assert url.endswith("/commit/1")
    (_, token), (_, repo, kw), (_, up) = FakeApi.calls
    assert token == "tok" and repo == "me/data" and kw == {"repo_type": "dataset", "private": True, "exist_ok": True}
    assert up["allow_patterns"] == ["README.md", "data/*"] and up["repo_type"] == "dataset"


def test_failed_push_says_the_data_is_safe_and_how_to_retry(tmp_path, monkeypatch):
    import huggingface_hub

    class Offline(FakeApi):
        def create_repo(self, repo_id, **kw):
            raise ConnectionError("no route to host")

    monkeypatch.setattr(huggingface_hub, "HfApi", Offline)
    with pytest.raises(InputError, match="complete on disk.*--push-to-hub"):
        push_to_hub(tmp_path, "me/data")
