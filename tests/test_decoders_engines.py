"""Parallel-thinking decoders beyond the scripted double: resume through the generation store, every
engine on the tiny random model (which rarely writes a tag by itself, so the decoders' `force_open`
opens the block), the `reason decode` CLI, the eval strategy, and the OpenAI engine's stop handling.
"""
from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from conftest import SPECIAL_KINDS
from decoder_double import CHAT, Script, critical, parse, tw_policy

from reasoning.cached_engine import CachedEngine
from reasoning.decoders import DecodeResult, ParallelR1Config, ParaThinkerConfig, ThreadWeaverConfig, run_decodes
from reasoning.formats.tags import ALL_TAGS
from reasoning.jsonl import read_jsonl
from reasoning.store import GenerationStore
from reasoning.types import Request
from reasoning.settings import from_dict



def test_cached_engine_makes_decodes_resumable(tmp_path):
    path = tmp_path / "store.jsonl"
    jobs = [(f"q{i}", CHAT, ThreadWeaverConfig()) for i in range(3)]
    with GenerationStore(path) as store:
        first = CachedEngine(Script(tw_policy()), store)
        a = run_decodes(first, "threadweaver", jobs)
    assert first.calls == 12 and first.hits == 0 and len(read_jsonl(path)) == 12
    with GenerationStore(path) as store:
        inner = Script(tw_policy())
        again = CachedEngine(inner, store)
        b = run_decodes(again, "threadweaver", jobs)
    assert again.calls == 0 and again.hits == 12 and inner.requests == []
    assert [x.text for x in a] == [x.text for x in b]
    assert [x.total_tokens for x in a] == [x.total_tokens for x in b]
    # a kill after the first 5 results: a rerun sends only the 7 requests that never finished
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:5]) + lines[5][:20])
    with GenerationStore(path) as store:
        inner = Script(tw_policy())
        resumed = CachedEngine(inner, store)
        c = run_decodes(resumed, "threadweaver", jobs)
    assert resumed.calls == 7 and resumed.hits == 5
    assert [x.text for x in c] == [x.text for x in a]


def test_cached_engine_iter_results_and_shared_in_flight_requests(tmp_path):
    with GenerationStore(tmp_path / "s.jsonl") as store:
        inner = Script(lambda r: ("hi", "stop"))
        eng = CachedEngine(inner, store)
        reqs = [Request(prompt=f"p{i % 2}") for i in range(4)]
        assert sorted(i for i, _ in eng.iter_results(reqs)) == [0, 1, 2, 3]
        assert eng.calls == 2 and len(inner.requests) == 2
        assert sorted(i for i, _ in eng.iter_results(reqs)) == [0, 1, 2, 3]
        assert eng.calls == 2 and eng.hits == 4

        async def same_twice():
            r = Request(prompt="twice")
            return await asyncio.gather(eng.agenerate(r), eng.agenerate(r))

        x, y = asyncio.run(same_twice())
        assert x.texts == y.texts and eng.calls == 3


class ServerScript(Script):
    """A Script that, like the openai engine, can be asked whether its server answers."""

    checks = 0

    async def check_ready(self) -> None:
        type(self).checks += 1
        await asyncio.sleep(0.01)


def test_cached_engine_checks_the_server_once_and_still_shares_identical_requests(tmp_path):
    with GenerationStore(tmp_path / "s.jsonl") as store:
        inner = ServerScript(lambda r: ("hi", "stop"))
        eng = CachedEngine(inner, store)

        async def burst():
            r = Request(prompt="same")
            return await asyncio.gather(*(eng.agenerate(r) for _ in range(3)), eng.agenerate(Request(prompt="other")))

        asyncio.run(burst())
        assert ServerScript.checks == 1 and eng.calls == 2 and len(inner.requests) == 2
        asyncio.run(eng.agenerate(Request(prompt="same")))  # from the store: no check, nothing sent
        assert ServerScript.checks == 1 and eng.calls == 2


# ---- real engines on the tiny model ------------------------------------------------------------------

STRAY_TAG = re.compile("|".join(re.escape(t) for t in ALL_TAGS))


class Recorder:
    """Passes requests to a real engine and keeps them (the decoders need only these methods).

    The random model writes a tag token every ~50 tokens, where a trained model would not; the
    recorder blanks tags inside completions so that parsing checks the structure the decoder
    built. Stops still happen in the engine (a completion that hit `</Path>` ends there).
    """

    def __init__(self, engine):
        self.engine = engine
        self.requests: list[Request] = []

    def render_chat(self, messages, add_generation_prompt=True):
        return self.engine.render_chat(messages, add_generation_prompt)

    async def agenerate(self, req):
        self.requests.append(req)
        res = await self.engine.agenerate(req)
        for c in res.completions:
            c.text = STRAY_TAG.sub("", c.text)
        return res

    async def aclose(self):
        if hasattr(self.engine, "aclose"):
            await self.engine.aclose()


REAL = {
    "parallel_r1": (from_dict(ParallelR1Config, dict(force_open=True, max_blocks=1, max_path_tokens=6,
                                                     max_summary_tokens=6,
                                     seed=11)), ["<Path>", "<Path>"], 3),
    "threadweaver": (from_dict(ThreadWeaverConfig, dict(force_open=True, max_thread_tokens=6, max_tokens=6, seed=11)),
                     ["\n<Thread>\n1:", "\n<Thread>\n2:"], 2),
    "parathinker": (from_dict(ParaThinkerConfig, dict(num_paths=2, max_path_tokens=6, max_summary_tokens=6, seed=11)),
                    ["<think1>", "<think2>"], 3),
}


@pytest.mark.slow
def test_every_method_runs_on_every_engine(engine):
    rec = Recorder(engine)
    jobs = {m: (f"real-{m}", CHAT, cfg) for m, (cfg, _, _) in REAL.items()}
    for method, (_, prefixes, n_requests) in REAL.items():
        rec.requests.clear()
        [res] = run_decodes(rec, method, [jobs[method]])
        assert isinstance(res, DecodeResult), res
        base = engine.render_chat(CHAT)
        branches = [r for r in res.requests if r["role"] in ("path", "thread")]
        assert len(branches) == 2 and res.blocks == 1
        assert [q.prompt[len(base):][-len(p):] for q, p in zip(rec.requests, prefixes)] == prefixes
        assert all(q.prompt.startswith(base) for q in rec.requests)
        if method != "threadweaver":
            assert len(res.requests) == n_requests and res.requests[-1]["role"] == "summary"
            assert rec.requests[-1].prompt.startswith(rec.requests[0].prompt[: -len(prefixes[0])])
        elif any(b["forced_close"] for b in branches):  # a thread ran out of tokens: the block closes, decode ends
            assert len(res.requests) == n_requests and res.text.endswith("\n</Thread>\n</Parallel>")
        assert res.total_tokens == sum(r["completion_tokens"] for r in res.requests) > 0
        assert res.generated_critical_path_tokens == critical(res) <= res.total_tokens
        assert res.critical_path_tokens <= res.response_tokens
        trace = parse(method, res.text)
        assert len(trace.blocks) == 1 and trace.blocks[0].width == 2, (method, res.text)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["hf", "openai-vllm", *SPECIAL_KINDS], indirect=True)
def test_parallel_r1_forks_on_a_tag_the_model_writes_special_token_or_not(engine):
    """No `force_open`: the main request must stop on the `<Parallel>` the model writes. The tiny model
    repeats its prompt's last token, so a trace ending in the tag makes it write one. With the tags as
    special tokens and skip_special_tokens=True decoding, that stop never fired and nothing forked."""
    source = engine.render_chat(CHAT) + "So we add<Parallel>"
    cfg = from_dict(ParallelR1Config, dict(max_blocks=1, max_tokens=6, max_path_tokens=4, max_summary_tokens=4,
                                           temperature=0, path_temperature=None, seed=3))
    [res] = run_decodes(engine, "parallel_r1", [("tag", source, cfg)])
    assert isinstance(res, DecodeResult), res
    assert [r["role"] for r in res.requests] == ["main", "path", "path", "summary"]
    assert res.requests[0]["stop_string"] == "<Parallel>" and res.blocks == 1
    assert res.text.startswith("<Parallel><Path>") and "</Path><Path>" in res.text
    assert res.text.count("</Path>") == 2 and "</Parallel>\n<Summary>" in res.text


@pytest.mark.slow
def test_decodes_on_a_real_engine_resume_from_the_store(tmp_path, tiny_model):
    from conftest import get_engine

    engine = get_engine("hf")
    jobs = [(m, CHAT, cfg) for m, (cfg, _, _) in REAL.items()]
    outs = {}
    for attempt in range(2):
        with GenerationStore(tmp_path / "store.jsonl") as store:
            cached = CachedEngine(engine, store)
            outs[attempt] = [run_decodes(cached, m, [job])[0] for m, job in zip(REAL, jobs)]
            assert (cached.calls, cached.hits) == ((8, 0) if attempt == 0 else (0, 8))
    assert [r.text for r in outs[0]] == [r.text for r in outs[1]]


# ---- CLI and eval ----------------------------------------------------------------------------------

def write(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_reason_decode_cli_end_to_end_and_resume(tmp_path, tiny_model, capsys):
    from parafuse.cli import main

    inp = write(tmp_path / "in.jsonl", [{"id": "a", "prompt": "What is 2 + 3?"},
                                         {"id": "b", "raw": "Question: what is 4 + 4? "}])
    out = tmp_path / "out.jsonl"
    args = ["reason", "decode", "--method", "threadweaver", "--model", str(tiny_model), "--input", str(inp),
            "--out", str(out), "--force-open", "--max-tokens", "6", "--max-thread-tokens", "6", "--no-progress"]
    assert main(args) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["a", "b"] and all(r["status"] == "ok" for r in rows)
    for r in rows:
        assert r["format"] == "threadweaver" and r["method"] == "threadweaver"
        assert r["total_tokens"] == sum(u["completion_tokens"] for u in r["usage"])
        assert {"text", "critical_path_tokens", "wall_s", "validation_errors", "config", "blocks"} <= set(r)
        assert r["config"]["force_open"] is True and r["config"]["max_thread_tokens"] == 6
    assert "2 prompts: 2 decoded (0 already in --out)" in err
    assert (tmp_path / "out.requests.jsonl").exists()
    before = out.read_text()
    assert main(args) == 0
    assert "2 decoded (2 already in --out)" in capsys.readouterr().err and out.read_text() == before
    # a lost --out is rebuilt from the request store without sending anything
    out.unlink()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "engine requests sent 0" in err
    assert [r["text"] for r in read_jsonl(out)] == [json.loads(x)["text"] for x in before.splitlines()]
    # a setting the method does not have is refused, naming it
    assert main(["reason", "decode", "--method", "parathinker", "--model", str(tiny_model), "--input", str(inp),
                 "--out", str(out), "--max-blocks", "4"]) == 2
    assert "--max-blocks does not apply to --method parathinker" in capsys.readouterr().err


PROBLEMS = [{"question": "What is 3 + 4?", "answer": "7"}, {"question": "What is 10 + 5?", "answer": "15"}]


def test_eval_strategy_scores_decodes_with_the_decoders_tokens(tmp_path):
    from eval.config import EvalConfig
    from eval.run import EvalRun

    def policy(req):
        a, b = map(int, re.findall(r"\d+", (req.prompt or req.messages[-1]["content"]).split("?")[0])[:2])
        if req.prompt is None:
            return f"\\boxed{{{a + b}}}", "stop"  # the plain pool
        s = req.prompt.split("<assistant>", 1)[1]
        if re.search(r"<Thread>\n\d:$", s):
            return " work </Thread>", "stop"
        if "</Thread>" in s:
            return f"</Parallel> so \\boxed{{{a + b}}}", "stop"
        return "Plan <Parallel> <Outlines> <Outline>1: a</Outline> <Outline>2: b</Outline> </Outlines>", "stop"

    data = write(tmp_path / "p.jsonl", PROBLEMS)
    cfg = from_dict(EvalConfig, dict(benchmark="toy", data=str(data), model="script", engine="script", n=3,
                     strategies=("plain", "threadweaver"), max_tokens=64, grader_timeout=10))
    eng = Script(policy)
    res = EvalRun(cfg, eng, tmp_path / "run", progress=False).run()
    [pt] = [p for p in res["points"] if p["strategy"] == "threadweaver"]
    # per decode: main 8 tokens, threads 2 + 2, join 4 -> 16 generated. The critical path is the response's
    # L_crit in words: outside "Plan" and "so \boxed{..}" 3, the block's 12 tags and outlines' 4 words 16, a
    # thread's "N: work" 2 -> 21 (the headers the decoder inserted count, as in ThreadWeaver's reward). The token
    # axis counts the same response: both threads, 3 + 16 + 2 + 2 = 23.
    assert pt["budget"] == 1 and pt["accuracy"] == 1.0
    assert pt["tokens"] == 3 + 16 + 2 + 2 and pt["critical_path_tokens"] == 3 + 16 + 2
    samples = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    tw = [s for s in samples if s["strategy"] == "threadweaver"]
    assert len(tw) == 6 and all(s["correct"] and s["tokens"] == 23 and s["critical_path_tokens"] == 21 for s in tw)
    assert len({s["seed"] for s in tw}) == 6 and sorted({s["sample_index"] for s in tw}) == [0, 1, 2]
    # rerun: everything comes from the run's store
    eng2 = Script(policy)
    EvalRun(cfg, eng2, tmp_path / "run", progress=False).run()
    assert eng2.requests == []


@pytest.mark.slow
def test_eval_run_threadweaver_on_the_tiny_model(tmp_path, tiny_model, capsys):
    from parafuse.cli import main

    data = write(tmp_path / "p.jsonl", PROBLEMS)
    out = tmp_path / "run"
    code = main(["eval", "run", "--data", str(data), "--benchmark", "toy", "--model", str(tiny_model), "-n", "2",
                 "--strategy", "plain,threadweaver", "--max-tokens", "8", "--out", str(out), "--no-progress"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    res = json.loads((out / "results.json").read_text())
    [pt] = [p for p in res["points"] if p["strategy"] == "threadweaver"]
    assert pt["budget"] == 1 and pt["n_problems"] == 2 and pt["tokens"] > 0
    assert 0 < pt["critical_path_tokens"] and res["format"]["threadweaver"]["speedup"] >= 1.0
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert sum(s["strategy"] == "threadweaver" for s in samples) == 4
    assert "threadweaver" in cap.out


def test_openai_engine_sends_at_most_four_stops_and_cuts_at_the_others_itself():
    """OpenAI-spec servers (vLLM's included) reject more than 4 stop strings with HTTP 400."""
    from reasoning.engines.openai_engine import OpenAIEngine
    from reasoning.types import SamplingParams

    eng = OpenAIEngine("m", base_url="http://127.0.0.1:9")
    sent = []

    def post_returning(choice):
        async def post(path, body):
            sent.append(body)
            return {"choices": [choice], "usage": {"prompt_tokens": 3, "completion_tokens": 6}}, 1, eng.servers[0]
        return post

    stops = tuple(f"S{i}" for i in range(1, 7))
    for include, server_text, text in ((False, "one S6 two ", "one "), (True, "one S6 two S1", "one S6")):
        # the server stopped on S1 (sent); S6 (not sent) came earlier
        eng._post = post_returning({"text": server_text, "finish_reason": "stop", "stop_reason": "S1"})
        res = asyncio.run(eng.agenerate(Request(prompt="p", params=SamplingParams(
            stop=stops, include_stop_str_in_output=include))))
        assert sent[-1]["stop"] == ["S1", "S2", "S3", "S4"]
        assert res.completions[0].text == text and res.completions[0].stop_string == "S6"
    # a server that ran to its limit: every stop string is applied here
    eng._post = post_returning({"text": "one two S5 three", "finish_reason": "length"})
    res = asyncio.run(eng.agenerate(Request(prompt="p", params=SamplingParams(stop=stops))))
    assert res.completions[0].text == "one two " and res.completions[0].stop_string == "S5"
    # four or fewer go to the server as they are
    asyncio.run(eng.agenerate(Request(prompt="p", params=SamplingParams(stop=stops[:4]))))
    assert sent[-1]["stop"] == ["S1", "S2", "S3", "S4"]
