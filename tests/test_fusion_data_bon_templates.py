"""Fusion-of-N data: the best-of-N pick written beside the fusion (`bon_scorer`), and the fusion
template chosen for open-ended prompts.
"""
from __future__ import annotations

import pytest
from fusion_pool import Pool, read_jsonl, rows_by_prompt, run_pool, sum_rows, write_jsonl

from reasoning.engines.scripted import ScriptedEngine
from reasoning.settings import from_dict
from reasoning.types import InputError
from synthesis.config import FusionDataConfig
from synthesis.fusion_data import synthesize_fusion_data


def test_open_ended_prompts_are_fused_with_the_general_template(tmp_path):
    prompt = "Write two sentences about autumn in Lisbon."
    data = write_jsonl(tmp_path / "prompts.jsonl", [{"question": prompt, "answer": None}])
    teacher = ScriptedEngine("teacher-a", policy=lambda req, j: (f"Autumn draft {j}.", "stop"))
    fusor = ScriptedEngine("fusor-model", policy=lambda req, j: ("Lisbon in autumn is golden. It is mild.", "stop"))
    cfg = from_dict(FusionDataConfig, dict(input=str(data), teachers=("scripted:teacher-a*2",),
                                           template="generic/user"))
    synthesize_fusion_data(cfg, [(teacher, 2)], fusor, tmp_path / "out", progress=False, log=lambda m: None)
    assert [r.messages[-1]["content"] for r in teacher.calls] == [prompt], "generic/user sends the text as is"
    text = fusor.calls[0].messages[-1]["content"]
    assert f"Request: {prompt}" in text and "--- Response 1 ---\nAutumn draft 0." in text
    assert "--- Response 2 ---\nAutumn draft 1." in text and "boxed" not in text
    row = read_jsonl(tmp_path / "out" / "data" / "train.jsonl")[0]
    assert row["fusion_template"].startswith("fusion/fuse_general@")
    # a name given explicitly is kept, whatever the teacher template
    cfg = from_dict(FusionDataConfig, dict(input=str(data), teachers=("scripted:teacher-a",), template="generic/user",
                                           fusion_template="fusion/fuse"))
    cfg.check()
    assert cfg.fusion_template == "fusion/fuse"


def test_bon_scorer_writes_the_best_of_n_pick_beside_the_fusion_with_both_rm_scores(tmp_path):
    from tests.fake_pooling_server import FakePoolingServer

    rows = sum_rows()
    script = {r["question"]: ([r["answer"], str(int(r["answer"]) + 1), r["answer"]], r["answer"]) for r in rows}
    pool = Pool(script)

    def reward(body):  # the served RM prefers teacher-a's second sample, and rates the fusion by its length
        text = body["messages"][1]["content"]
        return 5.0 if text.startswith("teacher-a sample 1") else (1.0 if "Having read" in text else 0.5)

    with FakePoolingServer(scores=reward) as server:
        run_pool(pool, write_jsonl(tmp_path / "sums.jsonl", rows), tmp_path / "out",
                 bon_scorer=f"reward-endpoint:{server.root}")
    got = rows_by_prompt(tmp_path / "out")
    for q, r in got.items():
        assert r["bon"] == pool.expected_candidates(q)[1] and r["bon_index"] == 1 and r["bon_model"] == "teacher-a"
        assert r["bon_score"] == 5.0 and r["fused_score"] == 1.0
        assert r["bon_scorer"] == f"reward-endpoint:{server.root}"
    assert len(server.calls) == len(rows) * 4, "three candidates and the fusion, each scored once"
    with pytest.raises(InputError, match="unknown option"):
        from_dict(FusionDataConfig, dict(input="x", teachers=("scripted:a",), bon_scorer="reward:m,bad=1")).check()
