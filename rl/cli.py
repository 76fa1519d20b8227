"""`parafuse train ...`: fine-tuning recipes.

    parafuse train sft RECIPE [--variant smoke|arith] [--resume] [--key value ...]
    parafuse train grpo RECIPE [--variant smoke] [--resume] [--key value ...]
    parafuse train curriculum RECIPE [--variant smoke] [--resume] [--until NAME]   # chained stages
    parafuse train recipes              # the bundled recipes and their variants

RECIPE is a YAML file or the name of a bundled recipe (`rl/recipes/NAME.yaml`). A recipe may hold
`variants:` (smoke: the tiny model on a CPU in a minute or two; arith: the arith task, sized to
show learning on a CPU); `--variant` merges one over the recipe. Flags override both.
"""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from reasoning.settings import add_config_args, build, flatten, given_flags, read_recipe, read_yaml
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
folder: `parafuse eval run --engine hf|vllm --model OUTPUT/merged`), OUTPUT/checkpoint-N (--resume),
OUTPUT/train_log.jsonl (every logged step: loss, learning rate, grad norm, ...)."""

GRPO_EXAMPLES = """examples:
  parafuse train grpo arith-grpo --variant smoke --output-dir runs/smoke-grpo       # tiny model, seconds
  parafuse train grpo arith-grpo --model-name runs/arith/mathfusion-sft/merged --output-dir runs/arith-grpo
  parafuse train grpo arith-grpo --rewards-use accuracy,format --rewards-weights 1,0.5 \\
      --rewards-format-format parallel_r1 --format parallel_r1 ...
  parafuse train grpo arith-grpo --variant threadweaver --scale-rewards none ...    # mean-centred (P-GRPO)
  parafuse train grpo arith-grpo --print-recipe                                     # the resolved settings
  parafuse train grpo parallel-r1-unseen --variant smoke      # Parallel-R1 decoder rollouts, Unseen log-probs
  parafuse train grpo threadweaver-pgrpo --variant smoke      # ThreadWeaver decoder rollouts, P-GRPO
  parafuse train grpo parallel-r1-seen --rollout-options num_paths=2,max_blocks=4 --rollout-policy-gap ...

How a step goes: per_device_train_batch_size completions are sampled, num_generations per prompt, with
TRL's own generate (temperature, top_p, max_completion_length), or, with --rollout-decoder, by parafuse's
parallel-thinking decoder on the live policy (each block's paths as separate requests; the stitched trace is
trained, the tags the decoder inserts out of the loss unless --rollout-train-inserted; --rollout-structure
parallel_r1_unseen scores paths that cannot see each other); every reward in --rewards-use scores each
one (its settings: --rewards-accuracy-*, -format-*, -alternating-*, -gsm8k-*, -threadweaver-*), the
weighted sum's distance from its group's mean is the advantage (divided by the group's std unless
--scale-rewards none), and the clipped policy-gradient loss (--loss-type, dapo by default; no KL with
--beta 0) takes one optimizer step. The log has reward, reward_std and rewards/NAME/mean for each reward.
GRPO wants a far lower learning rate than SFT (the arith toy model collapsed at 2e-4 and improved at 3e-5
with 64 rollouts per step).

Outputs: OUTPUT/final (adapter or weights, tokenizer, parafuse_training.json with the first and last logged
rewards), OUTPUT/merged (a plain model folder for `parafuse eval run`), OUTPUT/checkpoint-N (--resume),
OUTPUT/train_log.jsonl (every logged step: rewards, trace/parallel_share, trace/critical_tokens, ...)."""

CURRICULUM_EXAMPLES = """examples:
  parafuse train curriculum parallel-r1-curriculum --variant smoke --output-dir runs/smoke-p1   # tiny, CPU
  parafuse train curriculum parallel-r1-curriculum --print-recipe       # every stage's resolved settings
  parafuse train curriculum threadweaver-curriculum --model-name Qwen/Qwen3-8B --output-dir runs/tw
  parafuse train curriculum threadweaver-curriculum --output-dir runs/tw --until sft     # stage 1 only
  parafuse train curriculum threadweaver-curriculum --output-dir runs/tw --resume        # the rest

Each stage is a `train sft` or `train grpo` recipe, resolved as those commands resolve it (recipe, its
variant, then the stage's `set:` in place of flags). Stage i writes OUTPUT/<i>-<name>/ (final/, merged/,
checkpoint-N/); stage 1 starts from the curriculum's `model` (or --model-name, or its recipe's model.name),
every later one from the previous stage's merged/ folder. OUTPUT/curriculum.json records each stage's
status, start model, seconds and summary: --resume skips the stages that are done and continues a stopped
one from its last checkpoint; without --resume an existing curriculum.json is refused.

a curriculum recipe (rl/recipes/*-curriculum.yaml are complete ones):
  output_dir: runs/my-curriculum
  model: Qwen/Qwen3-4B-Base
  stages:
    - {name: coldstart, kind: sft, recipe: parallel-r1-coldstart-seen}
    - {name: rl, kind: grpo, recipe: arith-grpo, set: {data: {arith_level: 3}}}
  variants:
    smoke: {model: tiny, stages: {coldstart: {variant: smoke}, rl: {variant: smoke}}}

"""

def recipe_path(name: str) -> Path:
    path = Path(name)
    if path.is_file():
        return path
    bundled = RECIPES_DIR / f"{name}.yaml"
    if bundled.is_file():
        return bundled
    raise InputError(f"recipe {name!r}: no such file and no bundled recipe of that name; bundled: "
                     f"{', '.join(sorted(p.stem for p in RECIPES_DIR.glob('*.yaml')))}")


def recipe_values(name: str, variant: str | None) -> tuple[dict[str, Any], str]:
    """The recipe mapping with the variant merged in, and a name for error messages."""
    return read_recipe(recipe_path(name), variant)


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """The flags `train sft` and `train grpo` share, before the recipe's own settings."""
    parser.add_argument("recipe", help="a recipe YAML file, or a bundled recipe's name (see `parafuse train recipes`)")
    parser.add_argument("--variant", default=None, help="a variant of the recipe to merge in (smoke, arith, ...)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the last checkpoint in the output folder")
    parser.add_argument("--print-recipe", action="store_true", help="print the resolved settings as JSON and exit")
    parser.add_argument("--accelerate-config", default=None, metavar="NAME|FILE",
                        help="re-run this command under `accelerate launch` with TRL's bundled config NAME (zero1, "
                             "zero2, zero3, fsdp1, fsdp2, multi_gpu, single_gpu) or an accelerate config FILE")
    parser.add_argument("--num-processes", type=int, default=None,
                        help="with --accelerate-config: processes (GPUs)")


def register(sub: argparse._SubParsersAction) -> None:
    from rl.config import GRPORecipe, SFTRecipe

    train = sub.add_parser("train", help="fine-tune: SFT and GRPO recipes on TRL + PEFT",
                           description="Fine-tuning recipes for parallel thinking and fused data.")
    tsub = train.add_subparsers(dest="train_cmd", required=True, metavar="COMMAND")
    sft = tsub.add_parser("sft", help="supervised fine-tuning from a recipe (resumable)",
                          formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
                          description="Supervised fine-tuning on TRL's SFTTrainer: LoRA (PEFT) or full weights, "
                                      "loss on the assistant's tokens, and the attention structure of the "
                                      "recipe's method (Parallel-R1 Unseen paths, ThreadWeaver trie packing, "
                                      "ParaThinker's two-phase mask and thought embeddings).")
    add_run_flags(sft)
    add_config_args(sft, SFTRecipe, group="recipe settings (override the YAML)")
    sft.set_defaults(func=cmd_sft, parser=sft, recipe_cls=SFTRecipe)
    grpo = tsub.add_parser("grpo", help="reinforcement learning (GRPO) with the papers' rewards (resumable)",
                           formatter_class=argparse.RawDescriptionHelpFormatter, epilog=GRPO_EXAMPLES,
                           description="GRPO (DeepSeekMath, arXiv 2402.03300) on TRL's GRPOTrainer: LoRA (PEFT) "
                                       "or full weights, group-relative advantages over num_generations samples "
                                       "per prompt, and the rewards of the papers (accuracy, format, Parallel-R1's "
                                       "alternating and GSM8K-stage rewards, ThreadWeaver's acceleration "
                                       "reward), weighted and summed. The prompts need a gold `answer` column.")
    add_run_flags(grpo)
    add_config_args(grpo, GRPORecipe, group="recipe settings (override the YAML)")
    grpo.set_defaults(func=cmd_grpo, parser=grpo, recipe_cls=GRPORecipe)
    register_curriculum(tsub)
    listing = tsub.add_parser("recipes", help="list the bundled recipes and their variants")
    listing.set_defaults(func=cmd_recipes)


def resolve(args: argparse.Namespace):
    from rl.config import SFTRecipe

    cls = getattr(args, "recipe_cls", SFTRecipe)
    data, where = recipe_values(args.recipe, args.variant)
    found, _ = flatten(data, cls, where)
    found.update(given_flags(args, cls))
    recipe = build(cls, found)
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


def prepare(args: argparse.Namespace):
    """The resolved recipe; re-executes under `accelerate launch`, or prints it, as the flags ask (None: done)."""
    import os

    from reasoning.settings import to_dict

    recipe = resolve(args)
    if args.accelerate_config and "LOCAL_RANK" not in os.environ:
        command = accelerate_command(args.accelerate_config, args.num_processes, sys.argv[1:])
        print("running: " + " ".join(command), file=sys.stderr)
        os.execv(command[0], command)
    if args.print_recipe:
        print(json.dumps(to_dict(recipe), indent=1))
        return None
    return recipe


def train_and_report(args: argparse.Namespace, run) -> int:
    """Resolve the recipe, run `run(recipe, resume=...)`, print its summary (stdout) and where it wrote."""
    recipe = prepare(args)
    if recipe is None:
        return 0
    summary = run(recipe, resume=args.resume)
    print(json.dumps(summary, default=str))
    print(f"wrote {Path(recipe.output_dir) / 'final'}" + (f" and {Path(recipe.output_dir) / 'merged'}"
                                                          if recipe.save_merged else ""), file=sys.stderr)
    return 0


def cmd_sft(args: argparse.Namespace) -> int:
    from rl.sft import run_sft

    return train_and_report(args, run_sft)


def cmd_grpo(args: argparse.Namespace) -> int:
    from rl.grpo import run_grpo

    return train_and_report(args, run_grpo)


def cmd_recipes(args: argparse.Namespace) -> int:
    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        data = read_yaml(path)
        variants = ", ".join(data.get("variants", {}) or {}) or "-"
        print(f"{path.stem:32s} {recipe_kind(data):10s} variants: {variants:14s} {data.get('description', '')}")
    return 0


def recipe_kind(data: dict[str, Any]) -> str:
    """sft, grpo or curriculum: the command that takes the recipe (the recipe class that accepts its keys)."""
    from rl.config import GRPORecipe, SFTRecipe

    if "stages" in data:
        return "curriculum"
    body = {k: v for k, v in data.items() if k not in ("variants", "description")}
    for kind, cls in (("sft", SFTRecipe), ("grpo", GRPORecipe)):
        try:
            flatten(body, cls, "recipe")
        except InputError:
            continue
        return kind
    return "?"


def register_curriculum(tsub: argparse._SubParsersAction) -> None:
    from rl.curriculum import format_help

    cur = tsub.add_parser("curriculum", help="chained SFT and GRPO stages, each from the last one's weights "
                                             "(resumable)",
                          formatter_class=argparse.RawDescriptionHelpFormatter,
                          epilog=CURRICULUM_EXAMPLES + format_help(),
                          # the raw formatter keeps the epilog's layout, and so needs the description wrapped
                          description=textwrap.fill(
                              "A curriculum: stages of SFT and GRPO recipes run in order, each starting from the "
                              "previous stage's merged weights (Parallel-R1, arXiv 2509.07980 §3: cold-start SFT, "
                              "RL on an easy set, RL on a hard set; ThreadWeaver, arXiv 2512.07843: SFT, then "
                              "P-GRPO).", 110))
    cur.add_argument("recipe", help="a curriculum YAML file, or a bundled one's name (see `parafuse train recipes`)")
    cur.add_argument("--variant", default=None, help="a variant of the curriculum to merge in (smoke, ...)")
    cur.add_argument("--resume", action="store_true",
                     help="continue the run in the output folder: skip the stages that are done, continue a "
                          "stopped one from its last checkpoint")
    cur.add_argument("--output-dir", default=None, metavar="DIR",
                     help="the curriculum's folder (default: the recipe's output_dir)")
    cur.add_argument("--model-name", default=None, metavar="NAME",
                     help="the model stage 1 starts from (default: the recipe's `model`, else stage 1's recipe's)")
    cur.add_argument("--until", default=None, metavar="NAME", help="stop after this stage (--resume runs the rest)")
    cur.add_argument("--print-recipe", action="store_true",
                     help="print every stage's resolved settings as JSON and exit")
    cur.set_defaults(func=cmd_curriculum)


def cmd_curriculum(args: argparse.Namespace) -> int:
    from rl.curriculum import load_curriculum, resolved, run_curriculum

    curriculum = load_curriculum(args.recipe, args.variant, output_dir=args.output_dir, model=args.model_name)
    if args.print_recipe:
        print(json.dumps(resolved(curriculum), indent=1))
        return 0
    state = run_curriculum(curriculum, resume=args.resume, until=args.until)
    print(json.dumps(state, default=str))
    done = sum(e["status"] == "done" for e in state["stages"])
    print(f"curriculum: {done} of {len(state['stages'])} stages done; state in {curriculum.state_path}",
          file=sys.stderr)
    return 0
