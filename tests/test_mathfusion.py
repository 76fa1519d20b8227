"""MathFusion pipeline logic with a scripted teacher: jobs, retries, solutions, filters, resume.

The scripted engine lets each test decide what the "model" says, so the checks are exact;
tests/test_mathfusion_engines.py runs the same pipeline on real engines.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reasoning.types import InputError, Request
from reasoning.engines.scripted import ScriptedEngine
from synthesis.config import MathFusionConfig
from synthesis.mathfusion.pipeline import synthesize_mathfusion
from synthesis.sections import STRATEGY_SECTIONS
from reasoning.settings import from_dict

POOL = [
    {"question": "A train travels at 60 miles per hour for 3 hours. How many miles does the train travel?",
     "answer": "#### 180"},
    {"question": "A train moves at 40 miles per hour for 2 hours. How many miles does the train move?",
     "answer": "#### 80"},
    {"question": "Sam picks 5 apples into a basket and then 7 more apples. How many apples are in the basket?",
     "answer": "#### 12"},
    {"question": "Ann puts 3 apples into a basket and then 9 more apples. How many apples does the basket hold?",
     "answer": "#### 12"},
]


def write_pool(path: Path, rows=POOL) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def user_text(req: Request) -> str:
    return req.messages[-1]["content"]


def is_fusion(req: Request) -> bool:
    return "/fuse" in req.id


def problems_in(req: Request) -> tuple[str, str]:
    m = re.search(r"Problem 1:\n(.*?)\n\nProblem 2:\n(.*?)\n\n", user_text(req), re.S)
    return m.group(1), m.group(2)


def good_reply(req: Request, tag: str = "") -> str:
    """A well-formed reply for the strategy the request is for, unique per pair and strategy."""
    strategy = req.id.split("/")[0]
    names = STRATEGY_SECTIONS[strategy]
    a, b = problems_in(req)
    story = {"sequential": "Use the result of the first story as the starting amount of the second one.",
             "parallel": "Both happen on the same afternoon in one town, side by side.",
             "conditional": "Which of the two outcomes is larger, and what is that larger amount?"}[strategy]
    problem = f"[{strategy}{tag}] {story} First, {a[:30].lower()}; then {b[:30].lower()}. What is the total?"
    return f"### {names[0]}\nnotes\n\n### {names[1]}\nplan\n\n### {names[2]}\n{problem}"


def boxed(answer) -> str:
    return f"Reasoning.\n\\boxed{{{answer}}}"


def teacher(solve=lambda req, j: boxed(7), fuse=lambda req: good_reply(req)):
    def policy(req: Request, j: int):
        return (fuse(req), "stop") if is_fusion(req) else (solve(req, j), "stop")

    return ScriptedEngine(policy)


def config(pool: Path, **kw) -> MathFusionConfig:
    kw.setdefault("decontaminate", False)
    return from_dict(MathFusionConfig, dict(input=str(pool), embedder="tfidf", num_solutions=4, **kw))


def run(cfg, engine, out: Path, **kw) -> dict:
    return synthesize_mathfusion(cfg, engine, out, progress=False, log=lambda m: None, **kw)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_each_pair_is_fused_once_per_strategy_with_that_strategys_template(tmp_path):
    engine = teacher()
    st = run(config(write_pool(tmp_path / "pool.jsonl"), check_conditional=False), engine, tmp_path / "out")
    fusions = [r for r in engine.calls if is_fusion(r)]
    assert st["jobs"] == len(fusions) == 3 * len(POOL)
    for r in fusions:
        strategy = r.id.split("/")[0]
        assert r.key_extra.startswith(f"mathfusion/{strategy}@")
        a, b = problems_in(r)
        # nearest neighbours: train with train, apples with apples
        assert ("train" in a) == ("train" in b) and ("apple" in a) == ("apple" in b)
    rows = jsonl(tmp_path / "out" / "data" / "train.jsonl")
    assert {r["strategy"] for r in rows} == {"sequential", "parallel", "conditional"}
    for r in rows:
        assert r["problem"].startswith(f"[{r['strategy']}]")
        assert r["messages"] == [{"role": "user", "content": r["problem"]},
                                 {"role": "assistant", "content": r["solution"]}]
        assert r["fusion_template"].startswith(f"mathfusion/{r['strategy']}@")
        assert 0 < r["pair_similarity"] <= 1


def test_unusable_reply_is_retried_with_a_new_seed_then_recorded_with_every_reply(tmp_path):
    def fuse(req):
        a, _ = problems_in(req)
        if "Sam" in a:  # never usable
            return "I cannot do that."
        if "Ann" in a and not req.id.endswith("/1"):  # usable on the second attempt only
            return "### Analysis\nstill thinking"
        return good_reply(req)

    engine = teacher(fuse=fuse)
    cfg = config(write_pool(tmp_path / "pool.jsonl"), fusion_retries=2, strategies=("sequential",))
    st = run(cfg, engine, tmp_path / "out")
    failures = jsonl(tmp_path / "out" / "failures.jsonl")
    assert len(failures) == 1
    f = failures[0]
    assert f["reason"] == "missing_section" and len(f["attempts"]) == 3
    assert all(a["reply"] == "I cannot do that." for a in f["attempts"])
    sam_seeds = {r.params.seed for r in engine.calls if is_fusion(r) and "Sam" in problems_in(r)[0]}
    assert len(sam_seeds) == 3, "each attempt samples with a seed of its own"
    ann = next(r for r in jsonl(tmp_path / "out" / "data" / "train.jsonl") if "Ann" in r["problem_a"])
    assert ann["fusion_attempts"] == 2
    assert st["failure_reasons"] == {"missing_section": 1}
    assert st["rejected_replies"] == {"missing_section": 4}  # 3 for Sam, 1 for Ann
    card = (tmp_path / "out" / "README.md").read_text()
    assert "missing_section: 1" in card and "failures.jsonl" in card


def test_majority_share_is_recorded_and_filters_only_below_the_threshold(tmp_path):
    def solve(req, j):
        if "[sequential]" in user_text(req) and "train" in user_text(req):
            return boxed([5, 5, 5, 7][j])  # share 0.75
        return boxed(j)  # four different answers: share 0.25

    cfg = config(write_pool(tmp_path / "pool.jsonl"), strategies=("sequential",), min_majority_share=0.5)
    run(cfg, teacher(solve=solve), tmp_path / "out")
    kept = jsonl(tmp_path / "out" / "data" / "train.jsonl")
    removed = jsonl(tmp_path / "out" / "removed.jsonl")
    assert {r["majority_share"] for r in kept} == {0.75} and len(kept) == 2
    assert all(r["answer"] == "5" and "\\boxed{5}" in r["solution"] for r in kept)
    assert all(r["answers"] == ["5", "5", "5", "7"] for r in kept)
    assert {r["removed_reason"] for r in removed} == {"low_agreement"} and len(removed) == 2
    assert all(r["majority_share"] == 0.25 for r in removed)


def test_threshold_zero_keeps_every_fused_problem(tmp_path):
    cfg = config(write_pool(tmp_path / "pool.jsonl"), strategies=("parallel",))
    run(cfg, teacher(solve=lambda req, j: "no answer here"), tmp_path / "out")
    kept = jsonl(tmp_path / "out" / "data" / "train.jsonl")
    assert len(kept) == len(POOL) and all(r["majority_share"] == 0.0 and r["answer"] is None for r in kept)


def test_conditional_answer_must_equal_one_sub_answer_when_both_are_known(tmp_path):
    rows = POOL + [{"question": "Bob has 4 boxes with 6 pens in each box and no answer is recorded. "
                                "How many pens does Bob have?"}]
    pool = write_pool(tmp_path / "pool.jsonl", rows)

    def solve(req, j):
        text = user_text(req)
        if "bob" in text.lower() or "pens" in text:
            return boxed(1000)
        return boxed("12.0") if "apple" in text else boxed(99)  # 12 = both apple answers; 99 matches no train answer

    cfg = config(pool, strategies=("conditional",))
    run(cfg, teacher(solve=solve), tmp_path / "out")
    kept = jsonl(tmp_path / "out" / "data" / "train.jsonl")
    removed = jsonl(tmp_path / "out" / "removed.jsonl")
    apples = [r for r in kept if "apple" in r["problem_a"]]
    assert apples and all(r["conditional_match"] is True for r in apples), "12.0 equals the gold 12"
    assert {r["removed_reason"] for r in removed} == {"conditional_mismatch"}
    assert all("train" in r["problem_a"] for r in removed) and len(removed) == 2
    unknown = [r for r in kept if r["answer_a"] is None or r["answer_b"] is None]
    assert unknown and all(r["conditional_match"] is None for r in unknown), "unchecked, not dropped"
    run(config(pool, strategies=("conditional",), check_conditional=False), teacher(solve=solve),
        tmp_path / "off")
    assert not jsonl(tmp_path / "off" / "removed.jsonl")


def test_near_duplicate_fused_problems_are_removed_keeping_the_first(tmp_path):
    same = ("Two trains and some apples: a train goes 60 miles per hour for 3 hours while Sam picks 12 apples "
            "from the old tree behind the station, and later he sells half of them to the driver of the second "
            "train. How many miles and apples are there together at the end of the day?")

    def fuse(req):
        names = STRATEGY_SECTIONS["sequential"]
        a, _ = problems_in(req)
        text = same + " " + a.split()[0]  # one word apart: near-duplicates, not exact ones
        return f"### {names[2]}\n{text}"

    cfg = config(write_pool(tmp_path / "pool.jsonl"), strategies=("sequential",))
    st = run(cfg, teacher(fuse=fuse), tmp_path / "out")
    kept = jsonl(tmp_path / "out" / "data" / "train.jsonl")
    removed = jsonl(tmp_path / "out" / "removed.jsonl")
    dups = [r for r in removed if r["removed_reason"] == "duplicate"]
    assert len(dups) == 3 and len(kept) == 1, "four near-identical problems: the first stays"
    assert all(kept[0]["id"] in r["removed_detail"] for r in dups)
    assert st["removed_reasons"] == {"duplicate": 3}


def test_fused_problem_containing_a_benchmark_problem_is_removed_and_named(tmp_path):
    bench = tmp_path / "data" / "gsm8k"
    bench.mkdir(parents=True)
    leaked = "Janet has seventeen ducks that lay eggs every single morning at the farm near the river"
    (bench / "test.jsonl").write_text(json.dumps({"question": leaked + ". How many eggs?", "answer": "#### 3"}) + "\n")

    def fuse(req):
        names = STRATEGY_SECTIONS["sequential"]
        a, b = problems_in(req)
        tail = f"Then add {len(b)} more items, double everything, and report the grand total."
        body = f"{leaked}, and then {a} {tail}" if "Sam" in a else f"{a} {tail}"
        return f"### {names[2]}\n{body}"

    cfg = config(write_pool(tmp_path / "pool.jsonl"), strategies=("sequential",), decontaminate=True,
                 decontam_benchmarks=("gsm8k",), data_dir=str(tmp_path / "data"))
    run(cfg, teacher(fuse=fuse), tmp_path / "out")
    removed = jsonl(tmp_path / "out" / "removed.jsonl")
    assert len(removed) == 1 and removed[0]["removed_reason"] == "contaminated"
    assert "Sam" in removed[0]["problem_a"] and "gsm8k" in removed[0]["removed_detail"]
    assert "per benchmark: gsm8k: 1" in (tmp_path / "out" / "README.md").read_text()
    assert len(jsonl(tmp_path / "out" / "data" / "train.jsonl")) == len(POOL) - 1


def test_rerun_sends_nothing_and_a_changed_filter_regenerates_nothing(tmp_path):
    pool = write_pool(tmp_path / "pool.jsonl")
    engine = teacher(solve=lambda req, j: boxed([1, 1, 2, 3][j]))
    first = run(config(pool, check_conditional=False), engine, tmp_path / "out")
    sent = len(engine.calls)
    data = (tmp_path / "out" / "data" / "train.jsonl").read_text()
    again = run(config(pool, check_conditional=False), engine, tmp_path / "out")
    assert len(engine.calls) == sent and again["requests_sent"] == 0
    assert again["requests_from_store"] == first["requests_sent"]
    assert (tmp_path / "out" / "data" / "train.jsonl").read_text() == data
    strict = run(config(pool, check_conditional=False, min_majority_share=0.6), engine, tmp_path / "out")
    assert len(engine.calls) == sent and strict["kept"] == 0
    assert strict["removed_reasons"]["low_agreement"] == first["kept"]


def test_engine_failure_is_recorded_and_filled_in_by_a_rerun(tmp_path):
    broken = {"on": True}

    def solve(req, j):
        if broken["on"] and "ann puts" in user_text(req):
            raise ConnectionError("server went away")
        return boxed(3)

    pool = write_pool(tmp_path / "pool.jsonl")
    cfg = config(pool, strategies=("parallel",))
    engine = teacher(solve=solve)
    st = run(cfg, engine, tmp_path / "out")
    failures = jsonl(tmp_path / "out" / "failures.jsonl")
    assert st["failure_reasons"] == {"engine_error": len(failures)} and failures
    assert all("server went away" in f["detail"] for f in failures)
    before = len(engine.calls)
    broken["on"] = False
    st = run(cfg, engine, tmp_path / "out")
    assert st["kept"] == len(POOL) and not jsonl(tmp_path / "out" / "failures.jsonl")
    assert len(engine.calls) - before == len(failures), "only the failed solves are sent again"


def test_repeated_seed_problems_are_dropped_and_ones_without_answers_kept_and_counted(tmp_path):
    rows = POOL + [dict(POOL[0], question="  " + POOL[0]["question"].upper() + " "),
                   {"question": "Tom has 8 marbles and finds 4 more marbles. How many marbles does he have now?"}]
    cfg = config(write_pool(tmp_path / "pool.jsonl", rows), strategies=("sequential",))
    st = run(cfg, teacher(), tmp_path / "out")
    assert st["pools"] == [{"name": "pool", "problems": 5, "duplicates_dropped": 1, "without_answer": 1}]
    assert st["jobs"] == 5
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| pool | 5 | 1 | 1 |" in card


@pytest.mark.parametrize("rows, message", [
    ([], "has no records"),
    ([POOL[0]], "needs at least 2"),
    ([POOL[0], POOL[0]], "needs at least 2"),
])
def test_pool_too_small_to_pair_is_refused_before_any_request(tmp_path, rows, message):
    engine = teacher()
    with pytest.raises(InputError, match=message):
        run(config(write_pool(tmp_path / "pool.jsonl", rows)), engine, tmp_path / "out")
    assert engine.calls == []


def test_card_reports_counts_rates_and_tokens_and_loads_with_datasets(tmp_path):
    import datasets

    st = run(config(write_pool(tmp_path / "pool.jsonl"), check_conditional=False), teacher(), tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text()
    for strategy in ("sequential", "parallel", "conditional"):
        assert re.search(rf"\| {strategy} \| pool \| 4 \| 4 \| 0 \|", card), strategy
    assert f"{sum(st['tokens'].values()):,} tokens" in card
    assert "min_majority_share" in card  # the config block
    ds = datasets.load_dataset(str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"))["train"]
    assert len(ds) == st["kept"] and set(ds["strategy"]) == {"sequential", "parallel", "conditional"}


def test_originals_are_written_with_their_own_solutions_before_the_fused_rows(tmp_path):
    rows = [dict(r, solution=f"Worked solution {i}. #### {r['answer'].split()[-1]}") for i, r in enumerate(POOL)]
    rows[3].pop("solution")  # a seed without a solution cannot be an original row
    cfg = config(write_pool(tmp_path / "pool.jsonl", rows), strategies=("sequential",), include_originals=True,
                 solution_field="solution")
    st = run(cfg, teacher(), tmp_path / "out")
    data = jsonl(tmp_path / "out" / "data" / "train.jsonl")
    originals = [r for r in data if r["strategy"] == "original"]
    assert data[:3] == originals and len(originals) == 3
    assert [r["solution"] for r in originals] == [rows[i]["solution"] for i in range(3)]
    assert all(r["messages"][1]["content"] == r["solution"] and r["problem_a"] is None for r in originals)
    fused = data[3:]
    assert len(fused) == len(POOL) and all(r["problem_a"] for r in fused), "fused rows keep all their columns"
    assert st["originals"] == {"pool": 3}
    assert "3 from pool" in (tmp_path / "out" / "README.md").read_text()


def test_rows_record_the_embedder_that_paired_them_even_when_pairs_come_from_the_cache(tmp_path, monkeypatch):
    import synthesis.mathfusion.pipeline as pipeline

    pool = write_pool(tmp_path / "pool.jsonl")
    cfg = MathFusionConfig(input=str(pool), embedder="auto", decontaminate=False, strategies=("parallel",))
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: None)  # auto -> TF-IDF
    run(cfg, teacher(), tmp_path / "out")
    first = jsonl(tmp_path / "out" / "data" / "train.jsonl")
    monkeypatch.setattr(pipeline, "make_embedder", lambda *a, **k: pytest.fail("pairs should come from the cache"))
    run(cfg, teacher(), tmp_path / "out")
    again = jsonl(tmp_path / "out" / "data" / "train.jsonl")
    assert {r["embedder"] for r in first} == {r["embedder"] for r in again} == {"tfidf"}


# ---- the paper preset ----------------------------------------------------------------------------

def cli_settings(argv: list[str]) -> MathFusionConfig:
    from parafuse.cli import build_parser
    from synthesis.cli import _settings

    return _settings(MathFusionConfig, build_parser().parse_args(["synth", "mathfusion", *argv]))


PAPER = {"num_solutions": 1, "solution_pick": "first", "min_majority_share": 0.0, "check_conditional": False,
         "dedup": False, "decontaminate": False, "include_originals": True,
         "embedder": "openai:text-embedding-3-large", "embedder_fallback": False}


def test_paper_preset_gives_the_papers_settings_and_the_default_stays_clean(tmp_path):
    base = ["--input", "gsm8k-train", "--model", "m", "--out", str(tmp_path / "o")]
    paper = cli_settings(["--preset", "paper", *base])
    assert {k: getattr(paper, k) for k in PAPER} == PAPER
    clean = cli_settings(base)
    assert clean.preset == "clean"
    assert (clean.num_solutions, clean.solution_pick, clean.check_conditional, clean.dedup, clean.decontaminate,
            clean.include_originals, clean.embedder) == (4, "majority", True, True, True, False, "auto")


def test_flags_and_recipe_keys_win_over_the_preset_even_when_they_repeat_a_default(tmp_path):
    base = ["--input", "gsm8k-train", "--model", "m", "--out", str(tmp_path / "o")]
    # --num-solutions 4 is the clean default: given explicitly, it still beats the preset's 1
    cfg = cli_settings(["--preset", "paper", "--num-solutions", "4", "--dedup", *base])
    assert cfg.num_solutions == 4 and cfg.dedup is True
    assert cfg.check_conditional is False and cfg.include_originals is True, "the rest is the preset's"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("preset: paper\nembedder: tfidf\ninclude_originals: false\n")
    cfg = cli_settings(["--config", str(recipe), "--solution-pick", "majority", *base])
    assert (cfg.embedder, cfg.include_originals, cfg.solution_pick) == ("tfidf", False, "majority")
    assert cfg.num_solutions == 1 and cfg.decontaminate is False
    from synthesis.config import mathfusion_config

    lib = mathfusion_config({"input": "x", "preset": "paper", "num_solutions": 4})
    assert lib.num_solutions == 4 and lib.dedup is False


def test_unknown_preset_is_refused_with_the_choices(tmp_path, capsys):
    from parafuse.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["synth", "mathfusion", "--preset", "papers", "--input", "x", "--model", "m", "--out", str(tmp_path)])
    assert exit_.value.code == 2 and "preset must be one of clean, paper, got 'papers'" in capsys.readouterr().err


def test_paper_preset_run_pairs_by_the_endpoints_vectors_and_keeps_one_unchecked_solution(tmp_path):
    from synthesis.config import mathfusion_config
    from tests.fake_pooling_server import FakePoolingServer

    rows = [dict(r, solution=f"Worked solution {i}. {r['answer']}") for i, r in enumerate(POOL)]
    pool = write_pool(tmp_path / "pool.jsonl", rows)
    # The vectors pair each train problem with an apple problem (0<->2, 1<->3): the opposite of what
    # the wording (and TF-IDF) would give, so the fusion prompts show which pairing was used.
    vectors = {r["question"]: v for r, v in zip(POOL, [[1, 0, 0.1], [0, 1, 0.1], [1, 0, 0], [0, 1, 0]])}
    same = ("A train and a basket: a train goes 60 miles per hour for 3 hours and a basket gets 12 apples. "
            "How many miles and apples are there in all?")

    def fuse(req):  # one identical problem for every pair: dedup would keep only one
        return f"### {STRATEGY_SECTIONS['parallel'][2]}\n{same}"

    engine = teacher(solve=lambda req, j: boxed(5), fuse=fuse)
    with FakePoolingServer(vectors) as server:
        cfg = mathfusion_config({"input": str(pool), "preset": "paper", "embeddings_base_url": server.url,
                                 "solution_field": "solution", "strategies": ["parallel"]})
        st = run(cfg, engine, tmp_path / "out")
    assert {c["body"]["model"] for c in server.calls} == {"text-embedding-3-large"}
    for r in engine.calls:
        if is_fusion(r):
            a, b = problems_in(r)
            assert ("train" in a) != ("train" in b), "paired by the endpoint's vectors, not by words"
    solves = [r for r in engine.calls if not is_fusion(r)]
    assert len(solves) == len(POOL) and all(r.params.n == 1 for r in solves)
    data = jsonl(tmp_path / "out" / "data" / "train.jsonl")
    assert [r["strategy"] for r in data] == ["original"] * 4 + ["parallel"] * 4, "originals first, no dedup"
    assert all(r["num_solutions"] == 1 and r["answer"] == "5" for r in data[4:])
    assert st["removed_reasons"] == {} and all(r["embedder"] == "openai:text-embedding-3-large" for r in data[4:])


def test_first_pick_keeps_the_first_sample_and_its_own_answer(tmp_path):
    cfg = config(write_pool(tmp_path / "pool.jsonl"), strategies=("parallel",), solution_pick="first")
    run(cfg, teacher(solve=lambda req, j: boxed([3, 8, 8, 8][j])), tmp_path / "out")
    kept = jsonl(tmp_path / "out" / "data" / "train.jsonl")
    assert kept and all(r["answer"] == "3" and "\\boxed{3}" in r["solution"] for r in kept)
    assert all(r["majority_share"] == 0.75 and r["answers"] == ["3", "8", "8", "8"] for r in kept)


def test_max_pairs_fuses_that_many_pairs_and_still_writes_every_original(tmp_path):
    rows = [dict(r, solution=f"Worked solution {i}. #### {r['answer'].split()[-1]}") for i, r in enumerate(POOL)]
    cfg = config(write_pool(tmp_path / "pool.jsonl", rows), include_originals=True, solution_field="solution",
                 max_pairs=2, check_conditional=False)
    run(cfg, teacher(), tmp_path / "out")
    data = jsonl(tmp_path / "out" / "data" / "train.jsonl")
    originals = [r for r in data if r["strategy"] == "original"]
    fused = [r for r in data if r["strategy"] != "original"]
    assert len(originals) == len(POOL)  # every seed problem, paired or not
    pairs = {(r["problem_a_id"], r["problem_b_id"]) for r in fused}
    assert len(pairs) == 2 and len(fused) == 2 * 3  # two pairs, each fused three ways
    with pytest.raises(InputError, match="--max-pairs must be >= 1"):
        config(write_pool(tmp_path / "p2.jsonl", rows), max_pairs=0).check()


def test_arith_seed_solutions_feed_the_originals(tmp_path):
    """`eval task arith --solutions` writes each problem's worked solution, ending in its boxed answer, which
    `--include-originals --solution-field solution` keeps."""
    from parafuse.cli import main

    seed = tmp_path / "seed.jsonl"
    assert main(["eval", "task", "arith", "--level", "1", "--count", "5", "--solutions", "--out", str(seed)]) == 0
    for record in jsonl(seed):
        assert record["solution"].rstrip().endswith(f"\\boxed{{{record['answer']}}}.")
        assert record["solution"].count("\n") >= 2  # the worked steps before the answer line
