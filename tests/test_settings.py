"""The settings layer: dataclass -> flags, YAML recipes (the command line wins), dict round trips,
nested sampling blocks with their old flat spellings, and one flag per knob across commands."""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from reasoning.sampling import Sampling, sampling
from reasoning.settings import add_config_args, config_from_args, from_dict, nested, setting, to_dict
from reasoning.types import InputError


@dataclass
class Recipe:
    """A config shaped like the real ones: scalars, a list, an optional, a bool and two nested blocks."""

    name: str = setting("run", "a name")
    limit: int | None = setting(None, "at most this many")
    budgets: tuple[int, ...] = setting((1, 2), "the budgets")
    verbose: bool = setting(False, "say more")
    mode: str = setting("fast", "how", choices=("fast", "slow"))
    fuse: Sampling = nested(sampling(temperature=0.7, max_tokens=64), "fusion sampling",
                            aliases={"temperature": "temperature", "max_tokens": "max_tokens"})
    solve: Sampling = nested(sampling(temperature=0.2, max_tokens=128), "solution sampling")


def parse(argv, yaml_text: str | None = None, tmp_path: Path | None = None) -> tuple[Recipe, argparse.Namespace]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    parser.add_argument("--out", default=None)
    add_config_args(parser, Recipe)
    if yaml_text is not None:
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml_text)
        argv = ["--config", str(path), *argv]
    args = parser.parse_args(argv)
    return config_from_args(Recipe, args, parser), args


def test_defaults_come_from_the_dataclass_and_flags_set_nested_blocks():
    cfg, _ = parse([])
    assert cfg == Recipe()
    cfg, _ = parse(["--fuse-temperature", "0.3", "--solve-max-tokens", "9", "--budgets", "4,8", "--verbose",
                    "--limit", "none", "--mode", "slow"])
    assert cfg.fuse.temperature == 0.3 and cfg.fuse.max_tokens == 64, "the block keeps its other defaults"
    assert cfg.solve.max_tokens == 9 and cfg.solve.temperature == 0.2
    assert cfg.budgets == (4, 8) and cfg.verbose is True and cfg.limit is None and cfg.mode == "slow"


def test_old_flat_spellings_still_set_the_block():
    cfg, _ = parse(["--temperature", "0.1", "--max-tokens", "7"])
    assert (cfg.fuse.temperature, cfg.fuse.max_tokens) == (0.1, 7)
    assert cfg.solve.temperature == 0.2, "an alias belongs to one block only"


def test_yaml_nests_takes_aliases_and_prefixed_names_and_the_command_line_wins(tmp_path):
    text = "name: from-yaml\nfuse: {temperature: 0.9}\nmax_tokens: 33\nsolve_temperature: 0.4\nout: somewhere\n"
    cfg, args = parse(["--name", "from-flag"], text, tmp_path)
    assert cfg.name == "from-flag"
    assert cfg.fuse.temperature == 0.9 and cfg.fuse.max_tokens == 33 and cfg.solve.temperature == 0.4
    assert args.out == "somewhere", "a recipe may set the command's other flags"
    cfg, _ = parse(["--fuse-temperature", "0.5"], text, tmp_path)
    assert cfg.fuse.temperature == 0.5


@pytest.mark.parametrize("text, message", [
    ("nmae: x\n", "unknown key 'nmae'; did you mean 'name'? Valid keys: budgets, fuse"),
    ("fuse: {temprature: 1}\n", "unknown key 'fuse.temprature'; did you mean 'temperature'? Valid keys of this "
                                "block: max_tokens, seed"),
    ("limit: many\n", "key 'limit': limit must be int or none, got 'many'"),
    ("budgets: [1, two]\n", "budgets must be list of int"),
    ("mode: medium\n", "mode must be one of fast, slow, got 'medium'"),
    ("fuse: 0.7\n", "is a block of settings: give a mapping"),
    ("fuse: {temperature: -1}\n", "temperature must be >= 0"),
])
def test_bad_recipes_name_the_key_and_what_to_do(tmp_path, text, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")
                       .replace("?", r"\?")):
        parse([], text, tmp_path)


def test_bad_yaml_names_the_file_and_line(tmp_path):
    with pytest.raises(InputError, match=r"recipe\.yaml:3: not valid YAML \(mapping values are not allowed"):
        parse([], "name: a\nlimit: 2\nmode: fast: slow\n", tmp_path)


def test_a_bad_flag_value_is_an_argparse_error_naming_the_flag(capsys):
    with pytest.raises(SystemExit):
        parse(["--limit", "lots"])
    assert "--limit" in capsys.readouterr().err


def test_dicts_round_trip_and_flat_legacy_dicts_load():
    cfg = Recipe(name="x", budgets=(3,), fuse=Sampling(temperature=0.0, max_tokens=5))
    data = to_dict(cfg)
    assert data["fuse"] == {"temperature": 0.0, "top_p": 1.0, "max_tokens": 5, "seed": None}
    assert data["budgets"] == [3], "tuples become JSON lists"
    assert from_dict(Recipe, json.loads(json.dumps(data))) == cfg
    legacy = {"name": "x", "temperature": 0.0, "max_tokens": 5, "budgets": [3]}
    assert from_dict(Recipe, legacy).fuse == cfg.fuse


def test_help_shows_every_default():
    parser = argparse.ArgumentParser()
    add_config_args(parser, Recipe)
    text = parser.format_help()
    for shown in ("(default run)", "(default none)", "(default 1,2)", "(default False)", "(default 0.7)",
                  "(default 128)"):
        assert shown in text, shown
    assert "--fuse-temperature" in text and "--temperature" in text and "--solve-temperature" in text


# ---- the real commands ------------------------------------------------------------------------------

COMMANDS = (["reason", "generate"], ["reason", "decode"], ["synth", "mathfusion"], ["synth", "fusion"],
            ["eval", "run"])


def help_of(command: list[str]) -> str:
    from parafuse.cli import build_parser

    parser = build_parser()
    sub = parser
    for name in command:
        sub = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return sub.format_help()


@pytest.mark.parametrize("flag", ["--temperature", "--top-p", "--max-tokens", "--engine", "--model", "--base-url",
                                  "--config"])
def test_every_command_has_the_same_flag_for_the_same_knob(flag):
    missing = [" ".join(c) for c in COMMANDS if flag + " " not in help_of(c) and flag + "," not in help_of(c)]
    assert not missing, f"{flag} missing from: {missing}"


def test_stage_flags_are_prefixed_per_stage():
    assert "--fuse-temperature" in help_of(["synth", "mathfusion"])
    assert "--solve-temperature" in help_of(["synth", "mathfusion"])
    assert "--solver-base-url" in help_of(["synth", "mathfusion"])
    fusion = help_of(["synth", "fusion"])
    assert "--teacher-temperature" in fusion and "--fusor-temperature" in fusion and "--fusor-max-tokens" in fusion
    ev = help_of(["eval", "run"])
    assert "--pool-temperature" in ev and "--fusor-max-tokens" in ev and "--fusor-base-url" in ev


def test_eval_run_reads_a_yaml_recipe_and_refuses_unknown_keys(tmp_path):
    from eval.cli import eval_config

    recipe = tmp_path / "eval.yaml"
    recipe.write_text("benchmark: toy\nn: 3\npool: {temperature: 0.2}\nfusor_max_tokens: 50\nmodel: m\n"
                      f"out: {tmp_path / 'run'}\nengine: scripted\n")
    from parafuse.cli import build_parser

    args = build_parser().parse_args(["eval", "run", "--config", str(recipe), "--max-tokens", "99"])
    cfg = eval_config(args)
    assert (cfg.n, cfg.pool.temperature, cfg.pool.max_tokens, cfg.fusor.max_tokens) == (3, 0.2, 99, 50)
    assert cfg.engine == "scripted" and cfg.model == "m"
    recipe.write_text("benchmrk: toy\n")
    args = build_parser().parse_args(["eval", "run", "--config", str(recipe), "--model", "m", "--out", "x"])
    with pytest.raises(InputError, match="unknown key 'benchmrk'"):
        eval_config(args)


def test_reason_decode_applies_per_line_params_and_refuses_the_others(tmp_path):
    from reasoning.decode_cli import line_config
    from reasoning.decoders import ThreadWeaverConfig

    cfg = ThreadWeaverConfig()
    line = line_config(cfg, {"temperature": 0.0, "max_tokens": 12}, "in.jsonl:3")
    assert (line.sampling.temperature, line.sampling.max_tokens, line.sampling.top_p) == (0.0, 12, 0.95)
    assert line.max_thread_tokens == cfg.max_thread_tokens
    with pytest.raises(InputError, match=r"in\.jsonl:3: field `params`: n cannot be set per line"):
        line_config(cfg, {"n": 2}, "in.jsonl:3")


def test_reason_decode_uses_a_lines_params_end_to_end(tmp_path):
    from reasoning.jsonl import read_jsonl

    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "a", "prompt": "one two"}\n'
                       '{"id": "b", "prompt": "three", "params": {"max_tokens": 2}}\n')
    out = tmp_path / "out.jsonl"
    code = subprocess.run([sys.executable, "-m", "parafuse.cli", "reason", "decode", "--method", "threadweaver",
                           "--engine", "scripted", "--model", "tests.policies:long_reply", "--input", str(prompts),
                           "--out", str(out), "--no-progress", "--max-tokens", "5"],
                          capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert code.returncode == 0, code.stderr
    rows = {r["id"]: r for r in read_jsonl(out)}
    assert rows["a"]["config"]["sampling"]["max_tokens"] == 5 and rows["a"]["total_tokens"] == 5
    assert rows["b"]["config"]["sampling"]["max_tokens"] == 2 and rows["b"]["total_tokens"] == 2


def test_an_existing_eval_run_folder_resumes_with_zero_requests(tmp_path):
    """tests/data/legacy_eval was written by parafuse before the settings layer (commit f8c4847: flat
    temperature/max_tokens/fusor_max_tokens in config.json, store rows without token ids) with the
    policy in tests/policies.py; the same run now must be answered entirely from its store."""
    from eval.config import EvalConfig
    from eval.run import EvalRun
    from policies import legacy_policy
    from reasoning.engines.scripted import ScriptedEngine

    folder = tmp_path / "legacy"
    shutil.copytree(Path(__file__).parent / "data" / "legacy_eval", folder)
    old = json.loads((folder / "run" / "config.json").read_text())
    assert "temperature" in old and "pool" not in old, "the fixture predates the nested block"
    before = json.loads((folder / "run" / "results.json").read_text())
    # one fused subset per N: the first N samples, which is what the run fused then
    cfg = from_dict(EvalConfig, dict(benchmark="toy", data="problems.jsonl", engine="scripted", model="scripted", n=2,
                                     token_budgets=(8,), budget_samples=2, max_tokens=64, grader_timeout=10,
                                     fusion_subsets=1,
                                     strategies=("plain", "majority", "fusion", "budget", "threadweaver"),
                                     # the decoder settings of that time: the run's template, no response cap
                                     decoder_template=("run",), max_total_tokens=("none",)))
    engine = ScriptedEngine("scripted", policy=legacy_policy)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # the fixture's config.json names its data file relative to the folder
        after = EvalRun(cfg, engine, Path("run"), progress=False).run()
    assert engine.calls == [], f"{len(engine.calls)} requests were sent again"
    # majority@1 is now the mean over single samples (avg@1, as plain), not the first sample's verdict
    def kept(points):
        return [(p["strategy"], p["budget"], p["accuracy"]) for p in points
                if (p["strategy"], p["budget"]) != ("majority", 1)]

    assert kept(after["points"]) == kept(before["points"])
    accuracy = {(p["strategy"], p["budget"]): p["accuracy"] for p in after["points"]}
    assert accuracy[("majority", 1)] == accuracy[("plain", 1)]


def test_a_recipe_may_name_a_field_by_its_flag(tmp_path):
    from eval.cli import eval_config
    from parafuse.cli import build_parser

    recipe = tmp_path / "eval.yaml"
    recipe.write_text(f"strategy: plain,fusion\nmodel: m\nout: {tmp_path / 'run'}\nengine: scripted\n")
    args = build_parser().parse_args(["eval", "run", "--config", str(recipe)])
    assert eval_config(args).strategies == ("plain", "fusion")
