"""`synthesize_mathfusion`: the whole run, from seed pools to a dataset folder with its card."""
from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from prompts import PromptLibrary, default_library
from reasoning import quiet
from reasoning.engines.base import Engine
from reasoning.jsonl import read_jsonl, write_jsonl_atomic as write_jsonl
from reasoning.run_folder import RunFolder
from synthesis.config import MathFusionConfig
from synthesis.mathfusion.card import card_body
from synthesis.mathfusion.generate import MathFusionRun, make_jobs
from synthesis.mathfusion.rows import build_rows, features, original_rows, stats
from synthesis.output import push_to_hub, write_card, write_dataset
from synthesis.pairing import Pair, make_embedder, pair_problems
from synthesis.sources import Pool, load_pool, prepare_pool

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def load_pools(cfg: MathFusionConfig, log: Log = _stderr) -> list[Pool]:
    """Each comma-separated --input is its own pool: problems are paired within their pool only."""
    pools = []
    for source in [s.strip() for s in cfg.input.split(",") if s.strip()]:
        problems = load_pool(source, cfg.data_dir, cfg.question_field, cfg.answer_field, cfg.id_field, cfg.limit,
                             cfg.solution_field)
        pools.append(prepare_pool(problems, problems[0].benchmark if problems else source, log))
    return pools


def embedder_key(cfg: MathFusionConfig) -> str:
    """What decides the cached pairs: the --embedder spec, and for an endpoint also its server."""
    if cfg.embedder.startswith("openai:"):
        return f"{cfg.embedder}@{cfg.embeddings_base_url or 'https://api.openai.com/v1'}"
    return cfg.embedder


def pair_pool(pool: Pool, cfg: MathFusionConfig, cache: Path, embedder_factory, log: Log = _stderr,
              progress: bool = True) -> tuple[list[Pair], str]:
    """Nearest-neighbour pairs of a pool and the embedder that made them, reused from `cache` when
    it was made for the same problems with the same --embedder."""
    ids = [p.id for p in pool.problems]
    key = embedder_key(cfg)
    if cache.exists():
        rows = read_jsonl(cache)
        if [r["a_id"] for r in rows] == ids and rows and rows[0].get("embedder") == key:
            index = {pid: i for i, pid in enumerate(ids)}
            return ([Pair(index[r["a_id"]], index[r["b_id"]], r["similarity"], r["mutual"]) for r in rows],
                    rows[0].get("embedder_name", cfg.embedder))
    t0 = time.perf_counter()
    embedder = embedder_factory()
    pairs = pair_problems([p.question for p in pool.problems], embedder, cfg.pairing_memory_mb, progress)
    write_jsonl(cache, ({"a_id": ids[p.a], "b_id": ids[p.b], "similarity": round(float(p.similarity), 6),
                         "mutual": p.mutual, "embedder": key, "embedder_name": embedder.name}
                        for p in pairs))
    mutual = sum(p.mutual for p in pairs)
    log(f"{pool.name}: {len(pairs)} pairs by {embedder.name} in {time.perf_counter() - t0:.1f} s "
        f"({mutual} in mutual pairs); written to {cache}")
    return pairs, embedder.name


def _prewarm() -> None:
    """Import what the steps after generation need while generation waits on the engine."""
    import datasets  # noqa: F401  (writing the dataset)

    import eval.grading.equivalence  # noqa: F401  (the conditional answer check)
    import synthesis.decontam  # noqa: F401


def _grade_fn(timeout_s: float):
    """eval's grader, started only if a conditional row needs checking."""
    def grade(pairs: Sequence[tuple[str, str]]) -> list[bool]:
        from eval.grading.equivalence import Grader

        with Grader(timeout_s=timeout_s) as g:
            return [x.correct for x in g.grade_many(list(pairs))]

    return grade


def _decontaminator(cfg: MathFusionConfig, log: Log):
    if not cfg.decontaminate:
        return None
    from synthesis.decontam import Decontaminator, load_references

    refs = load_references(cfg.decontam_benchmarks, cfg.data_dir)
    d = Decontaminator(refs, n=cfg.decontam_ngram)
    log("decontaminating against " + ", ".join(f"{k} ({v})" for k, v in d.sizes.items())
        + f" with {cfg.decontam_ngram}-grams")
    return d


def provenance(cfg: MathFusionConfig, engine: Engine, solver: Engine | None, library: PromptLibrary,
               embedder: str) -> dict[str, dict[str, Any]]:
    from synthesis.output import generator_name

    base = {"engine": engine.kind, "fusion_model": engine.model, "solver_model": (solver or engine).model,
            "solve_template": f"{cfg.solve_template}@{library.version(cfg.solve_template)}",
            "seed": cfg.seed, "embedder": embedder, "generator": generator_name()}
    out = {}
    for s in cfg.strategies:
        name = f"{cfg.fusion_template_dir}/{s}"
        out[s] = {**base, "fusion_template": f"{name}@{library.version(name)}"}
    return out


def synthesize_mathfusion(cfg: MathFusionConfig, engine: Engine, out_dir: Path, solver: Engine | None = None,
                          library: PromptLibrary | None = None, progress: bool = True, hub_repo: str | None = None,
                          hub_private: bool = False, log: Log = _stderr) -> dict[str, Any]:
    """Pair, fuse, solve, filter and write the dataset folder; returns the run's statistics."""
    cfg.check()
    library = library or default_library()
    for s in cfg.strategies:  # a missing or broken template fails now, not after the pairing
        library.variables(f"{cfg.fusion_template_dir}/{s}")
    folder = RunFolder(out_dir)
    folder.start(cfg.to_dict())
    pools = load_pools(cfg, log)
    decontaminator = _decontaminator(cfg, log)
    built: list = []

    def embedder():
        if not built:
            built.append(make_embedder(cfg.embedder, log=log, base_url=cfg.embeddings_base_url,
                                       api_key_env=cfg.embeddings_api_key_env,
                                       request_batch_size=cfg.embedding_batch_size,
                                       fallback=cfg.embedder_fallback))
        return built[0]

    jobs, embedders = [], set()
    for pool in pools:
        pairs, name = pair_pool(pool, cfg, out_dir / "pairs" / f"{_safe(pool.name)}.jsonl", embedder, log, progress)
        embedders.add(name)
        if cfg.max_pairs is not None:  # the budget is shared by the pools, first come first served
            taken = len(jobs) // len(cfg.strategies)
            pairs = pairs[:max(0, cfg.max_pairs - taken)]
        jobs += make_jobs(pool.problems, pairs, cfg.strategies)
    log(f"{len(jobs)} fusion jobs ({len(cfg.strategies)} strategies x {len(jobs) // len(cfg.strategies)} pairs)")
    # Long-lived objects (modules, pools, pairs) need no garbage-collector passes: freezing them
    # removes pauses of a few hundred ms from the middle of generation on large runs (the exit
    # still frees them: quiet.freeze_gc).
    quiet.freeze_gc()
    threading.Thread(target=_prewarm, name="prewarm", daemon=True).start()
    t0 = time.perf_counter()
    with folder.store() as store:
        run = MathFusionRun(cfg, engine, store, solver=solver, library=library, progress=progress)
        outcomes = run.run(jobs)
    elapsed = time.perf_counter() - t0
    per_strategy = provenance(cfg, engine, solver, library, ", ".join(sorted(embedders)))
    rows = build_rows(outcomes, cfg, per_strategy,
                      grade=_grade_fn(5.0), decontaminator=decontaminator)
    if cfg.include_originals:
        originals = original_rows([p for pool in pools for p in pool.problems])
        rows.kept[:0] = originals
        log(f"{len(originals)} seed problems written with their own solutions (strategy 'original')")
    run_stats = stats(outcomes, rows)
    run_stats.update(requests_sent=run.requests_sent, requests_from_store=run.requests_from_store,
                     generation_s=round(elapsed, 2), pools=[p.summary() for p in pools])
    write_dataset(out_dir, rows.kept, features())
    folder.write_rows("removed.jsonl", rows.removed)
    folder.write_failures(rows.failures)
    folder.write_stats(run_stats)
    prov = {k: v for k, v in per_strategy[cfg.strategies[0]].items() if k != "fusion_template"}
    prov["fusion_templates"] = ", ".join(p["fusion_template"] for p in per_strategy.values())
    write_card(out_dir, "MathFusion data", card_body(run_stats, run_stats["pools"], prov),
               ["synthetic", "math", "mathfusion", "parafuse"], cfg.to_dict())
    if hub_repo:
        log(f"pushed to the Hub: {push_to_hub(out_dir, hub_repo, hub_private)}")
    return run_stats


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
