"""Learning is visible on a CPU: the arith recipes lift the arith model from nothing to something.

Two short full-fine-tuning runs of the ~1M-parameter arith model from its random initialisation,
then `parafuse eval run` on held-out arith problems with the hf engine, greedy:

  - `mathfusion-sft --variant arith` (plain solutions): greedy accuracy goes from 0 (the random
    model writes no answer) to a share that chance cannot reach;
  - `parallel-r1-coldstart-seen --variant arith` (Parallel-R1 traces): the greedy outputs are
    valid Parallel-R1 traces (`reasoning.formats.parallel_r1.validate`) at the rate asserted.

The budgets are sized for CI (about three and two minutes of training, one thread); the README
quotes what longer runs reach.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

STEPS = {"mathfusion-sft": 800, "parallel-r1-coldstart-seen": 250}
PROBLEMS = 60


def train_and_eval(recipe: str, out: Path, steps: int, model: str | None = None, problems: int = PROBLEMS
                   ) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    if model is None:
        train = subprocess.run(
            [sys.executable, "-m", "parafuse", "train", "sft", recipe, "--variant", "arith", "--output-dir",
             str(out), "--max-steps", str(steps), "--learning-rate", "3e-3", "--data-arith-count", "8000",
             "--data-arith-template", "math/question", "--save-steps", "100000", "--logging-steps", "100"],
            capture_output=True, text=True, env=env, timeout=900)
        assert train.returncode == 0, train.stderr[-3000:]
        model = str(out / "merged")
    evaluation = subprocess.run(
        [sys.executable, "-m", "parafuse", "eval", "run", "--benchmark", "arith", "--level", "1", "--limit",
         str(problems), "--engine", "hf", "--model", model, "-n", "1", "--temperature", "0", "--max-tokens", "160",
         "--strategy", "plain", "--template", "math/question", "--out", str(out / "eval"), "--no-progress"],
        capture_output=True, text=True, env=env, timeout=900)
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    return [json.loads(line) for line in (out / "eval" / "samples.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    from reasoning.tiny_model import build_tiny_model

    out = tmp_path_factory.mktemp("untrained")
    return train_and_eval("", out, 0, model=str(build_tiny_model(out / "model", preset="arith")), problems=10)


def test_plain_sft_lifts_greedy_accuracy_from_zero(tmp_path, untrained):
    before = sum(s["correct"] for s in untrained) / len(untrained)
    samples = train_and_eval("mathfusion-sft", tmp_path / "plain", STEPS["mathfusion-sft"])
    after = sum(s["correct"] for s in samples) / len(samples)
    assert before == 0.0
    # measured: 15% of 100 held-out answers after 800 steps (9% after 400, 11% after 600); 5 of 60 right is
    # out of reach of the untrained model (no answers at all) and of one that learned only the format
    assert after >= 0.08, f"accuracy {after:.3f} after {STEPS['mathfusion-sft']} steps"
    assert all(s["extractor"] == "boxed" for s in samples)  # every answer in the trained form


def test_parallel_r1_sft_writes_valid_traces(tmp_path, untrained):
    from reasoning.formats import parallel_r1

    def valid_rate(samples):  # a valid trace with at least one parallel block (plain text is valid, unforked)
        return sum("<Parallel>" in s["text"] and not parallel_r1.validate(s["text"], require_final_answer=False)
                   for s in samples) / len(samples)

    samples = train_and_eval("parallel-r1-coldstart-seen", tmp_path / "seen", STEPS["parallel-r1-coldstart-seen"])
    assert valid_rate(untrained) == 0.0
    assert valid_rate(samples) >= 0.9, [s["text"] for s in samples[:3]]
