"""`parafuse train curriculum`: stages chained on the tiny model, stopped and resumed, bad recipes refused.

The bundled parallel-r1-curriculum's smoke variant runs from the CLI in two goes (`--until coldstart`,
then `--resume`): every stage writes final/ and merged/, and stage 2's weights are stage 1's merged
weights plus stage 2's own update (its adapter on stage 1's merged/ gives its merged/; on the base
model it does not). A stage stopped after a checkpoint continues from that checkpoint; stages that
are done are not run again; a curriculum file with a bad stage fails naming the file and the stage.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from reasoning.types import InputError
from rl.curriculum import load_curriculum, run_curriculum, run_stage

ENV = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "TRL_EXPERIMENTAL_SILENCE": "1",
       "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
STAGES = ("1-coldstart", "2-rl-gsm8k", "3-rl-dapo")


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "parafuse", *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout)


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def chained(tiny_model, tmp_path_factory):
    """The parallel-r1 smoke curriculum on the session's tiny model: `--until coldstart`, then `--resume`."""
    out = tmp_path_factory.mktemp("curriculum") / "run"
    base = ["train", "curriculum", "parallel-r1-curriculum", "--variant", "smoke", "--model-name", str(tiny_model),
            "--output-dir", str(out)]
    first = cli(*base, "--until", "coldstart")
    assert first.returncode == 0, first.stderr[-3000:]
    after_first = {
        "state": json.loads((out / "curriculum.json").read_text()),
        "later_dirs": [name for name in STAGES[1:] if (out / name).exists()],
        "mtimes": {p: p.stat().st_mtime_ns for p in (out / STAGES[0]).rglob("*") if p.is_file()},
    }
    second = cli(*base, "--resume")
    assert second.returncode == 0, second.stderr[-3000:]
    return SimpleNamespace(out=out, first=first, second=second, after_first=after_first,
                           state=last_json(second.stdout))


def test_every_stage_starts_from_the_previous_stage_merged_weights(chained, tiny_model):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out, state = chained.out, chained.state
    assert [e["status"] for e in state["stages"]] == ["done"] * 3
    for name in STAGES:
        assert (out / name / "final" / "adapter_model.safetensors").is_file(), name
        assert (out / name / "merged" / "config.json").is_file(), name
    starts = [e["start_model"] for e in state["stages"]]
    assert starts == [str(tiny_model), str(out / STAGES[0] / "merged"), str(out / STAGES[1] / "merged")]
    adapter = json.loads((out / STAGES[1] / "final" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(out / STAGES[0] / "merged")

    torch.set_num_threads(1)

    def load(folder):
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)

    stage1, stage2 = load(out / STAGES[0] / "merged").state_dict(), load(out / STAGES[1] / "merged").state_dict()
    assert any(not torch.equal(stage1[k], stage2[k]) for k in stage1)  # the RL stage did update the weights
    on_stage1 = PeftModel.from_pretrained(load(out / STAGES[0] / "merged"), out / STAGES[1] / "final")
    rebuilt = on_stage1.merge_and_unload().state_dict()
    worst = max((rebuilt[k] - stage2[k]).abs().max().item() for k in stage2)
    assert worst < 1e-5, worst  # stage 2 = stage 1's merged weights + stage 2's own update
    on_base = PeftModel.from_pretrained(load(tiny_model), out / STAGES[1] / "final").merge_and_unload().state_dict()
    assert max((on_base[k] - stage2[k]).abs().max().item() for k in stage2) > 1e-3  # and not the base model's


def test_until_stops_after_a_stage_and_resume_runs_only_the_rest(chained):
    first = chained.after_first
    assert [e["status"] for e in first["state"]["stages"]] == ["done", "pending", "pending"]
    assert first["later_dirs"] == []
    assert "--until coldstart: stopping with 2 stage(s) left" in chained.first.stderr
    assert "stage 1/3 coldstart" in chained.second.stderr and "skipped" in chained.second.stderr
    assert "stage 2/3 rl-gsm8k" in chained.second.stderr and "stage 3/3 rl-dapo" in chained.second.stderr
    # stage 1 was not run again: its record and every one of its files are as the first run left them
    assert chained.state["stages"][0] == first["state"]["stages"][0]
    assert {p: p.stat().st_mtime_ns for p in first["mtimes"]} == first["mtimes"]
    summaries = [e["summary"] for e in chained.state["stages"]]
    assert [s["steps"] for s in summaries] == [4, 3, 3] and all(s["resumed_from"] is None for s in summaries)


def test_a_stage_stopped_after_a_checkpoint_resumes_from_it(chained, tiny_model, tmp_path):
    """The state a kill after stage 3's step-2 checkpoint leaves: checkpoint-2, no later checkpoint, no final/
    or merged/, and the stage recorded as running. --resume runs that stage alone, from checkpoint-2."""
    out = tmp_path / "run"
    shutil.copytree(chained.out, out)
    stage3 = out / STAGES[2]
    assert (stage3 / "checkpoint-2").is_dir()  # the smoke variant saves at step 2 of 3
    for name in ("checkpoint-3", "final", "merged"):
        shutil.rmtree(stage3 / name)
    state = json.loads((out / "curriculum.json").read_text())
    state["stages"][2].update(status="running", summary=None, seconds=None)
    (out / "curriculum.json").write_text(json.dumps(state))

    ran = []

    def runner(stage, resume):
        ran.append((stage.name, resume))
        return run_stage(stage, resume)

    torch.set_num_threads(1)
    curriculum = load_curriculum("parallel-r1-curriculum", "smoke", output_dir=str(out), model=str(tiny_model))
    got = run_curriculum(curriculum, resume=True, runner=runner, log=lambda _: None)
    assert ran == [("rl-dapo", True)]
    summary = got["stages"][2]["summary"]
    assert summary["resumed_from"] == str(stage3 / "checkpoint-2") and summary["steps"] == 3
    assert got["stages"][2]["status"] == "done" and (stage3 / "merged" / "config.json").is_file()
    assert json.loads((out / "curriculum.json").read_text()) == json.loads(json.dumps(got))


def test_a_rerun_without_resume_is_refused(chained):
    run = cli("train", "curriculum", "parallel-r1-curriculum", "--variant", "smoke", "--output-dir", str(chained.out))
    assert run.returncode == 2
    assert str(chained.out / "curriculum.json") in run.stderr and "--resume" in run.stderr
    assert "--output-dir" in run.stderr


def test_threadweaver_smoke_curriculum_runs_from_the_cli(tiny_model, tmp_path):
    out = tmp_path / "tw"
    run = cli("train", "curriculum", "threadweaver-curriculum", "--variant", "smoke", "--model-name", str(tiny_model),
              "--output-dir", str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    sft, pgrpo = last_json(run.stdout)["stages"]
    assert (sft["name"], sft["kind"], pgrpo["name"], pgrpo["kind"]) == ("sft", "sft", "pgrpo", "grpo")
    assert pgrpo["start_model"] == str(out / "1-sft" / "merged")
    assert sft["summary"]["structure"] == "threadweaver_trie"
    assert pgrpo["summary"]["rewards"] == ["threadweaver", "format"]
    assert pgrpo["summary"]["threadweaver_last"] is not None
    record = json.loads((out / "2-pgrpo" / "merged" / "parafuse_training.json").read_text())
    assert record["recipe"]["training"]["scale_rewards"] == "none"  # arith-grpo's threadweaver variant: P-GRPO


def test_print_recipe_and_the_recipe_listing():
    shown = cli("train", "curriculum", "parallel-r1-curriculum", "--variant", "smoke", "--output-dir", "runs/x",
                "--print-recipe")
    assert shown.returncode == 0, shown.stderr[-2000:]
    stages = json.loads(shown.stdout)["stages"]
    assert [s["recipe"]["output_dir"] for s in stages] == ["runs/x/1-coldstart", "runs/x/2-rl-gsm8k",
                                                            "runs/x/3-rl-dapo"]
    assert [s["recipe"]["model"]["name"] for s in stages] == ["tiny", "runs/x/1-coldstart/merged",
                                                               "runs/x/2-rl-gsm8k/merged"]
    assert [s["recipe"]["data"]["arith_level"] for s in stages[1:]] == [1, 3]  # easy, then hard
    assert stages[0]["recipe"]["training"]["max_steps"] == 4  # the SFT recipe's own smoke variant
    listing = cli("train", "recipes")
    kinds = {line.split()[0]: line.split()[1] for line in listing.stdout.splitlines()}
    assert kinds["parallel-r1-curriculum"] == kinds["threadweaver-curriculum"] == "curriculum"
    assert kinds["arith-grpo"] == "grpo" and kinds["threadweaver-sft"] == "sft"


# ---------------------------------------------------------------------------- bad recipes

GOOD = {"name": "cold", "kind": "sft", "recipe": "parallel-r1-coldstart-seen", "variant": "smoke"}
RL = {"name": "rl", "kind": "grpo", "recipe": "arith-grpo", "variant": "smoke"}


def write(tmp_path: Path, *stages: dict, **top) -> Path:
    import yaml

    path = tmp_path / "my-curriculum.yaml"
    path.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "out"), **top, "stages": list(stages)}))
    return path


@pytest.mark.parametrize("stages, message", [
    ((GOOD, {**RL, "recipie": "arith-grpo"}), r"stage 2 'rl'.*unknown key 'recipie'; did you mean 'recipe'"),
    ((GOOD, {**RL, "kind": "ppo"}), r"stage 2 'rl'.*kind must be one of sft, grpo, got 'ppo'"),
    ((GOOD, {**RL, "name": "cold"}), r"stage 2 'cold'.*already stage 1's; stage names must be unique"),
    ((GOOD, {**RL, "recipe": "no-such-recipe"}), r"stage 2 'rl'.*'no-such-recipe'.*bundled: .*arith-grpo"),
    ((GOOD, {**RL, "kind": "sft"}), r"stage 2 'rl'.*arith-grpo.yaml.*unknown key 'rewards'.*kind, sft"),
    ((GOOD, {**RL, "set": {"training": {"max_step": 3}}}), r"stage 2 'rl': set: unknown key 'training.max_step'"),
    ((GOOD, {**RL, "set": {"model": {"name": "x"}}}), r"stage 2 'rl': set: model.name: .*previous stage"),
    ((GOOD, {**RL, "variant": "huge"}), r"stage 2 'rl'.*no variant 'huge'; it has: smoke, threadweaver"),
    ((GOOD, {"name": "rl", "kind": "grpo"}), r"stage 2 'rl': `recipe` is missing"),
    ((GOOD, {**RL, "name": "rl/hard"}), r"stage 2 'rl/hard': name 'rl/hard' must be"),
])
def test_bad_stages_are_named_with_the_file(stages, message, tmp_path):
    path = write(tmp_path, *stages)
    with pytest.raises(InputError, match=message) as caught:
        load_curriculum(str(path))
    assert str(path) in str(caught.value)


def test_a_stage_recipe_path_is_read_beside_the_curriculum_file(tmp_path, monkeypatch):
    (tmp_path / "my-sft.yaml").write_text("model: {name: tiny}\ndata: {source: 'arith:plain'}\n"
                                          "training: {max_steps: 7}\nsave_merged: false\n")
    path = write(tmp_path, {"name": "mine", "kind": "sft", "recipe": "my-sft.yaml", "set": {"lora": {"r": 4}}}, RL)
    monkeypatch.chdir(tmp_path.parent)  # not the curriculum's folder: the path is found beside the file
    mine, rl = load_curriculum(str(path)).stages
    assert mine.where == str(tmp_path / "my-sft.yaml") and mine.recipe.training.max_steps == 7
    assert mine.recipe.lora.r == 4 and mine.recipe.save_merged is True  # forced: stage 2 loads its merged/
    assert rl.recipe.model.name == str(tmp_path / "out" / "1-mine" / "merged")


def test_bad_curriculum_files_and_runs_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"my-curriculum.yaml.*`stages:` must be a non-empty list"):
        load_curriculum(str(write(tmp_path)))
    with pytest.raises(InputError, match=r"unknown key 'stage'; did you mean 'stages'"):
        load_curriculum(str(write(tmp_path, GOOD, stage=[RL])))
    with pytest.raises(InputError, match=r"arith-grpo.yaml: not a curriculum"):
        load_curriculum("arith-grpo")
    variant = write(tmp_path, GOOD, RL, variants={"smoke": {"stages": {"rl-hard": {"variant": "smoke"}}}})
    with pytest.raises(InputError, match=r"variant 'smoke' changes stage 'rl-hard'.*its stages: cold, rl"):
        load_curriculum(str(variant), "smoke")
    curriculum = load_curriculum(str(write(tmp_path, GOOD, RL)))
    never = []
    with pytest.raises(InputError, match=r"--until rl-hard: no such stage; the stages are: cold, rl"):
        run_curriculum(curriculum, until="rl-hard", runner=lambda s, r: never.append(s))
    curriculum.output_dir.mkdir(parents=True)
    (curriculum.state_path).write_text(json.dumps({"stages": [{"name": "cold", "kind": "sft", "status": "done"}]}))
    with pytest.raises(InputError, match=r"records the stages cold \(sft\), but the curriculum now has cold \(sft\), "
                                         r"rl \(grpo\)"):
        run_curriculum(curriculum, resume=True, runner=lambda s, r: never.append(s))
    assert never == []
    run = cli("train", "curriculum", str(write(tmp_path, GOOD, {**RL, "kind": "ppo"})))
    assert run.returncode == 2 and "my-curriculum.yaml" in run.stderr and "stage 2 'rl'" in run.stderr
