"""`synthesize_fusion_data`: the whole Fusion-of-N data run, from prompts to a dataset folder."""
from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prompts import PromptLibrary, default_library
from reasoning import quiet
from reasoning.engines.base import Engine
from reasoning.run_folder import RunFolder
from synthesis.config import FusionDataConfig
from synthesis.fusion_data.card import card_body
from synthesis.fusion_data.generate import FusionDataRun, Log
from synthesis.fusion_data.rows import bon_columns, features, fusion_stats, grade_outcomes, row
from synthesis.output import push_to_hub, write_card, write_dataset
from synthesis.sources import load_pool

def synthesize_fusion_data(cfg: FusionDataConfig, teachers: Sequence[tuple[Engine, int]], fusor: Engine,
                           out_dir: Path, library: PromptLibrary | None = None, progress: bool = True,
                           hub_repo: str | None = None, hub_private: bool = False,
                           log: Log = lambda m: print(m, file=sys.stderr)) -> dict[str, Any]:
    """Generate, grade (math), and write the dataset folder with its card; returns the statistics."""
    from synthesis.output import generator_name

    cfg.check()
    library = library or default_library()
    library.variables(cfg.template), library.variables(cfg.fusion_template)  # fail now on a bad template
    folder = RunFolder(out_dir)
    folder.start(cfg.to_dict())
    problems = []
    for source in [s.strip() for s in cfg.input.split(",") if s.strip()]:
        problems += load_pool(source, cfg.data_dir, cfg.question_field, cfg.answer_field, cfg.id_field, cfg.limit)
    log(f"{len(problems)} prompts x {sum(n for _, n in teachers)} candidates from {len(teachers)} teacher(s)")
    quiet.freeze_gc()  # as in mathfusion: no collector passes over long-lived objects during generation
    t0 = time.perf_counter()
    with folder.store() as store:
        run = FusionDataRun(cfg, teachers, fusor, store, library, progress)
        outcomes = run.run(problems)
    elapsed = time.perf_counter() - t0
    do_grade = cfg.grade == "yes" or (cfg.grade == "auto" and any(p.gold is not None for p in problems))
    graded = grade_outcomes(outcomes) if do_grade else {}
    prov = {"teachers": ", ".join(f"{e.kind}:{e.model}*{n}" for e, n in teachers),
            "fusor": f"{fusor.kind}:{fusor.model}", "template": f"{cfg.template}@{library.version(cfg.template)}",
            "fusion_template": f"{cfg.fusion_template}@{library.version(cfg.fusion_template)}", "seed": cfg.seed,
            "generator": generator_name()}
    bon = bon_columns(outcomes, cfg.bon_scorer) if cfg.bon_scorer else {}
    prov["bon_scorer"] = cfg.bon_scorer or "none"
    rows = [row(o, graded.get(k), prov, bon.get(k)) for k, o in enumerate(outcomes) if o.failure is None]
    failures = [{"id": f"fusion/{o.problem.id}", "prompt": o.problem.question, "error": o.failure}
                for o in outcomes if o.failure is not None]
    stats = fusion_stats(outcomes, graded)
    stats.update(requests_sent=run.requests_sent, requests_from_store=run.requests_from_store,
                 generation_s=round(elapsed, 2))
    write_dataset(out_dir, rows, features())
    folder.write_failures(failures)
    folder.write_stats(stats)
    write_card(out_dir, "Fusion-of-N data", card_body(stats, prov), ["synthetic", "fusion-of-n", "parafuse"],
               cfg.to_dict())
    if hub_repo:
        log(f"pushed to the Hub: {push_to_hub(out_dir, hub_repo, hub_private)}")
    return stats


def summary(stats: dict[str, Any], out: str) -> str:
    lines = [f"{stats['prompts']} prompts: {stats['rows']} rows, {stats['failed']} failed -> {out}/data/train.parquet "
             f"(card {out}/README.md)",
             f"requests: {stats['requests_sent']} sent, {stats['requests_from_store']} from the store; "
             f"generation {stats['generation_s']:.1f} s; tokens "
             + ", ".join(f"{k} {v:,}" for k, v in stats["tokens"].items())]
    if "accuracy" in stats:
        lines.append("accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in stats["accuracy"].items()))
    return "\n".join(lines)
