"""`parafuse train ...`: fine-tuning recipes.

    parafuse train sft RECIPE [--variant smoke|arith] [--resume] [--key value ...]
    parafuse train recipes              # the bundled recipes and their variants

RECIPE is a YAML file or the name of a bundled recipe (`rl/recipes/NAME.yaml`). A recipe may hold
`variants:` (smoke: the tiny model on a CPU in a minute or two; arith: the arith task, sized to
show learning on a CPU); `--variant` merges one over the recipe. Flags override both.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

from reasoning.settings import add_config_args, build, flatten, given_flags, read_yaml
from reasoning.types import InputError

RECIPES_DIR = Path(__file__).parent / "recipes"

EXAMPLES = """examples:
  parafuse train recipes
  parafuse train sft parallel-r1-coldstart-unseen --variant smoke --output-dir runs/smoke-unseen
  parafuse train sft parallel-r1-coldstart-unseen --variant arith --output-dir runs/arith-unseen
  parafuse train sft threadweaver-sft --model-name Qwen/Qwen3-8B --data-source runs/tw-traces \\
      --output-dir runs/tw-sft --resume
  accelerate launch --config_file zero3.yaml -m parafuse train sft threadweaver-sft ...   # multi-GPU (README)

Outputs: OUTPUT/final (adapter or weights, tokenizer, parafuse_training.json), OUTPUT/merged (a plain model
folder: `parafuse eval run --engine hf|vllm --model OUTPUT/merged`), OUTPUT/checkpoint-N (--resume)."""


def recipe_path(name: str) -> Path:
    path = Path(name)
    if path.is_file():
        return path
    bundled = RECIPES_DIR / f"{name}.yaml"
    if bundled.is_file():
        return bundled
    raise InputError(f"recipe {name!r}: no such file and no bundled recipe of that name; bundled: "
                     f"{', '.join(sorted(p.stem for p in RECIPES_DIR.glob('*.yaml')))}")


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def recipe_values(name: str, variant: str | None) -> tuple[dict[str, Any], str]:
    """The recipe mapping with the variant merged in, and a name for error messages."""
    path = recipe_path(name)
    data = read_yaml(path)
    variants = data.pop("variants", {}) or {}
    data.pop("description", None)
    if variant:
        if variant not in variants:
            raise InputError(f"{path}: no variant {variant!r}; it has: {', '.join(variants) or 'none'}")
        data = merge(data, variants[variant])
    return data, f"{path}" + (f" (variant {variant})" if variant else "")


def register(sub: argparse._SubParsersAction) -> None:
    from rl.config import SFTRecipe

    train = sub.add_parser("train", help="fine-tune: SFT recipes on TRL + PEFT with structured attention",
                           description="Fine-tuning recipes for parallel thinking and fused data.")
    tsub = train.add_subparsers(dest="train_cmd", required=True, metavar="COMMAND")
    sft = tsub.add_parser("sft", help="supervised fine-tuning from a recipe (resumable)",
                          formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
                          description="Supervised fine-tuning on TRL's SFTTrainer: LoRA (PEFT) or full weights, "
                                      "loss on the assistant's tokens, and the attention structure of the "
                                      "recipe's method (Parallel-R1 Unseen paths, ThreadWeaver trie packing, "
                                      "ParaThinker's two-phase mask and thought embeddings).")
    sft.add_argument("recipe", help="a recipe YAML file, or a bundled recipe's name (see `parafuse train recipes`)")
    sft.add_argument("--variant", default=None, help="a variant of the recipe to merge in (smoke, arith, ...)")
    sft.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the output folder")
    sft.add_argument("--print-recipe", action="store_true", help="print the resolved settings as JSON and exit")
    sft.add_argument("--accelerate-config", default=None, metavar="NAME|FILE",
                     help="re-run this command under `accelerate launch` with TRL's bundled config NAME (zero1, "
                          "zero2, zero3, fsdp1, fsdp2, multi_gpu, single_gpu) or an accelerate config FILE")
    sft.add_argument("--num-processes", type=int, default=None, help="with --accelerate-config: processes (GPUs)")
    add_config_args(sft, SFTRecipe, group="recipe settings (override the YAML)")
    sft.set_defaults(func=cmd_sft, parser=sft)
    listing = tsub.add_parser("recipes", help="list the bundled recipes and their variants")
    listing.set_defaults(func=cmd_recipes)


def resolve(args: argparse.Namespace):
    from rl.config import SFTRecipe

    data, where = recipe_values(args.recipe, args.variant)
    found, _ = flatten(data, SFTRecipe, where)
    found.update(given_flags(args, SFTRecipe))
    recipe = build(SFTRecipe, found)
    recipe.check()
    return recipe


def accelerate_command(config: str, num_processes: int | None, argv: list[str]) -> list[str]:
    """`accelerate launch` of this same command (without the re-exec flags), as `trl sft --accelerate_config`."""
    import trl

    path = Path(config)
    if not path.is_file():
        bundled = Path(trl.__file__).parent / "accelerate_configs" / f"{config}.yaml"
        if not bundled.is_file():
            names = ", ".join(sorted(p.stem for p in bundled.parent.glob("*.yaml")))
            raise InputError(f"--accelerate-config {config}: no such file and no bundled TRL config; bundled: {names}")
        path = bundled
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--accelerate-config", "--num-processes"):
            skip = True
            continue
        if arg.startswith(("--accelerate-config=", "--num-processes=")):
            continue
        rest.append(arg)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(path)]
    if num_processes:
        launch += ["--num_processes", str(num_processes)]
    return launch + ["-m", "parafuse"] + rest


def cmd_sft(args: argparse.Namespace) -> int:
    import os

    from reasoning.settings import to_dict

    recipe = resolve(args)
    if args.accelerate_config and "LOCAL_RANK" not in os.environ:
        command = accelerate_command(args.accelerate_config, args.num_processes, sys.argv[1:])
        print("running: " + " ".join(command), file=sys.stderr)
        os.execv(command[0], command)
    if args.print_recipe:
        print(json.dumps(to_dict(recipe), indent=1))
        return 0
    from rl.sft import run_sft

    summary = run_sft(recipe, resume=args.resume)
    print(json.dumps(summary, default=str))
    print(f"wrote {Path(recipe.output_dir) / 'final'}" + (f" and {Path(recipe.output_dir) / 'merged'}"
                                                          if recipe.save_merged else ""), file=sys.stderr)
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        data = read_yaml(path)
        variants = ", ".join(data.get("variants", {}) or {}) or "-"
        print(f"{path.stem:32s} variants: {variants:14s} {data.get('description', '')}")
    return 0
