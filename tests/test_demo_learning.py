"""`parafuse demo --smoke` end to end: every stage for real, on the arith model built from scratch, and the
learning it must show.

One run of the smoke demo (5-7 minutes on a 2-core CPU) is shared by the tests: the SFT model
answers what the untrained one cannot, majority vote over N samples beats one sample, the Parallel-R1
model writes valid blocks and forks on them, the report holds the frontier plots, the run folder says
how to reproduce each number, and a rerun redoes nothing. The accuracies are recomputed here from the
graded samples, not read from the demo's own summary.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from parafuse.demo import load_config, plan
from reasoning.jsonl import read_jsonl


def demo(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "parafuse", "demo", "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "smoke"
    done = demo(out)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def samples(run: Path, model: str, strategy: str) -> list[dict]:
    rows = read_jsonl(run / "eval" / model / "samples.jsonl")
    return [r for r in rows if r["strategy"] == strategy]


def accuracy(rows: list[dict]) -> float:
    return sum(r["correct"] for r in rows) / len(rows)


def point(run: Path, model: str, strategy: str, budget: int) -> float:
    points = json.loads((run / "eval" / model / "results.json").read_text())["points"]
    return next(p["accuracy"] for p in points if p["strategy"] == strategy and p["budget"] == budget)


def test_sft_answers_what_the_untrained_model_cannot(run):
    untrained, trained = samples(run, "untrained", "plain"), samples(run, "sft-plain", "plain")
    smoke = load_config(None, "smoke").eval
    assert len(untrained) == len(trained) == smoke.limit * smoke.n
    assert accuracy(untrained) == 0.0  # the random model writes no answer
    # measured (one sample at T = 1.0, 1600 steps on the 6000 seed problems, three training seeds): 0.34 /
    # 0.43 / 0.43; 0.25 is far out of reach of chance and of a model that learned only the answer's form
    assert accuracy(trained) >= 0.25, accuracy(trained)
    assert all(r["extractor"] == "boxed" for r in trained if r["answer"] is not None)


def test_majority_vote_beats_one_sample(run):
    n = load_config(None, "smoke").eval.n
    single = accuracy(samples(run, "sft-plain", "plain"))
    assert point(run, "sft-plain", "majority", 1) == pytest.approx(single)
    assert point(run, "sft-plain", "majority", n) > single + 0.03
    # the vote counts the pool's own answers: where the gold answer has strictly the most votes, the vote
    # is right whatever the tie rule; that share is a floor under majority@n
    votes = defaultdict(lambda: defaultdict(int))
    right = defaultdict(set)
    for r in samples(run, "sft-plain", "plain"):
        if r["answer"] is not None:
            votes[r["problem_id"]][r["answer"]] += 1
            if r["correct"]:
                right[r["problem_id"]].add(r["answer"])
    problems = {r["problem_id"] for r in samples(run, "sft-plain", "plain")}
    floor = sum(bool(right[p]) and max(votes[p][a] for a in right[p]) >
                max([c for a, c in votes[p].items() if a not in right[p]] or [0]) for p in problems) / len(problems)
    assert point(run, "sft-plain", "majority", n) >= floor


def test_the_parallel_model_writes_valid_blocks_and_forks(run):
    from reasoning.formats import parallel_r1

    smoke = load_config(None, "smoke").eval
    for model in ("sft-parallel_r1", "grpo-parallel_r1"):
        decoded = samples(run, model, "parallel_r1")
        assert len(decoded) == smoke.limit * smoke.decoder_samples
        valid = [not parallel_r1.validate(r["text"], require_final_answer=False) for r in decoded]
        forked = [r["critical_path_tokens"] < r["tokens"] for r in decoded]  # paths ran side by side
        assert sum(valid) / len(decoded) >= 0.9, (model, decoded[0]["text"])
        assert sum(forked) / len(decoded) >= 0.9, model
    # the untrained model emits the tags (they are tokens of its vocabulary) but never a valid block
    untrained = samples(run, "untrained", "plain")
    assert not any("<Parallel>" in r["text"] and not parallel_r1.validate(r["text"], require_final_answer=False)
                   for r in untrained)


def test_grpo_ran_the_papers_reward_on_decoder_rollouts(run):
    final = json.loads((run / "models" / "grpo-parallel_r1" / "final" / "parafuse_training.json").read_text())
    log = [json.loads(line) for line in
           (run / "models" / "grpo-parallel_r1" / "train_log.jsonl").read_text().splitlines()]
    steps = [entry for entry in log if "reward" in entry]
    assert final["steps"] == load_config(None, "smoke").training.grpo_steps == len(steps)
    assert final["rewards"] == ["parallel_r1_alternating"]
    # rollouts came from the Parallel-R1 decoder: (nearly) every one forked a block, none failed
    assert all(entry["rollout/blocks"] >= 0.9 and entry["rollout/failed"] == 0 for entry in steps)
    assert all(-1.0 <= entry["reward"] <= 1.2 for entry in steps)


def test_the_report_and_the_run_folder_reproduce_every_number(run):
    html = (run / "report" / "report.html").read_text()
    markdown = (run / "report" / "report.md").read_text()
    assert html.count("<img") + html.count("<svg") >= 2  # the frontier plots, inlined
    assert "Pareto" in markdown and "critical" in markdown.lower()
    for label in ("untrained", "sft-plain", "sft-parallel_r1", "grpo-parallel_r1"):
        assert label in markdown
    readme = (run / "README.md").read_text()
    for stage in plan(load_config(None, "smoke")):  # each stage's command, to rerun it alone
        assert "parafuse " + " ".join(stage.command[:3]) in readme, stage.name
        assert (run / stage.writes).exists(), stage.writes
    trained = accuracy(samples(run, "sft-plain", "plain"))
    assert f"{trained:.3f}" in readme  # the summary's number is the graded samples' own


def test_a_rerun_redoes_nothing(run):
    before = json.loads((run / "demo.json").read_text())["stages"]
    again = demo(run)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("skipped") == len(before)  # the stage lines go to stderr
    assert json.loads((run / "demo.json").read_text())["stages"] == before
