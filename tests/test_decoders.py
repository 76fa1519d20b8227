"""Parallel-thinking decoders: the requests they issue, their joins and usage, resume, CLI and eval.

Most tests drive the decoders with `Script`, an engine double whose answers the test writes and
that honours stop strings and max_tokens the way real engines do (a "token" is a whitespace
word, plus one for a stop string or EOS). The others run every engine on the tiny random
model; since it rarely writes a tag by itself, the decoders' `force_open` opens the block.
"""
from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from reasoning.cached_engine import CachedEngine
from reasoning.decoders import (
    DecodeResult,
    ParallelR1Config,
    ParaThinkerConfig,
    ThreadWeaverConfig,
    get_decoder,
    run_decodes,
)
from reasoning.decoders.parathinker import REFERENCE_SUMMARY_PREFIX
from reasoning.engines.base import Engine
from reasoning.formats.tags import ALL_TAGS
from reasoning.store import GenerationStore, read_jsonl
from reasoning.types import Completion, Request, Result

CHAT = ({"role": "user", "content": "What is 3 + 4?"},)
BASE = "<user>What is 3 + 4?</user><assistant>"


class Script(Engine):
    """An async engine double: `policy(request) -> (text, "stop" | "length")` says what the model
    would write with no limits; the double cuts it at the earliest stop string or max_tokens."""

    kind = "script"

    def __init__(self, policy, delay: float = 0.005):
        super().__init__("script-model")
        self.policy = policy
        self.delay = delay
        self.requests: list[Request] = []
        self.in_flight = 0
        self.peak = 0

    def render_chat(self, messages, add_generation_prompt: bool = True) -> str:
        return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"

    def _complete(self, req: Request) -> Result:
        self.requests.append(req)
        comps = [self._cut(*self.policy(req), req.params) for _ in range(req.params.n)]
        prompt = self.prompt_text(req)
        return Result(comps, prompt_tokens=len(prompt.split()), latency_s=self.delay, engine=self.kind,
                      model=self.model, request_id=req.id)

    @staticmethod
    def _cut(text: str, finish: str, p) -> Completion:
        at, stop = len(text), None
        for s in p.stop:
            i = text.find(s)
            if 0 <= i < at:
                at, stop = i, s
        words = list(re.finditer(r"\S+", text[:at]))
        if len(words) > p.max_tokens:
            return Completion(text[: words[p.max_tokens - 1].end()], p.max_tokens, "length")
        if stop is not None:
            body = text[: at + len(stop)] if p.include_stop_str_in_output else text[:at]
            return Completion(body, len(words) + 1, "stop", stop)
        return Completion(text, len(words) + (finish == "stop"), finish)

    async def agenerate(self, req: Request) -> Result:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.delay)  # lets the other branches of a block start
        finally:
            self.in_flight -= 1
        return self._complete(req)

    def iter_results(self, requests):
        for i, r in enumerate(requests):
            yield i, self._complete(r)


def decode(method: str, engine, cfg, source=CHAT, key: str = "q") -> DecodeResult:
    [res] = run_decodes(engine, method, [(key, source, cfg)])
    if isinstance(res, BaseException):
        raise res
    return res


def suffix(req: Request) -> str:
    return req.prompt[len(BASE):]


def critical(res: DecodeResult) -> int:
    """Sequential requests plus the longest branch of each block, from the usage rows."""
    seq = sum(r["completion_tokens"] for r in res.requests if r["role"] not in ("path", "thread"))
    blocks: dict[int, int] = {}
    for r in res.requests:
        if r["role"] in ("path", "thread"):
            blocks[r["block"]] = max(blocks.get(r["block"], 0), r["completion_tokens"])
    return seq + sum(blocks.values())


def check_usage(res: DecodeResult) -> None:
    assert res.total_tokens == sum(r["completion_tokens"] for r in res.requests)
    assert res.critical_path_tokens == critical(res)
    assert res.wall_s > 0


def parse(fmt: str, text: str):
    """The format's parse tree, checking structure only (a random model writes no final answer)."""
    from reasoning.formats import get_format

    module = get_format(fmt)
    return module.parse(text, **getattr(module, "STRUCTURE_ONLY", {}))


# ---- Parallel-R1 ---------------------------------------------------------------------------------

def r1_policy(req: Request):
    s = suffix(req)
    if s.endswith("<Path>"):
        i = int(req.id.rsplit("/", 1)[1])
        return (" check by counting up </Path> never" if i == 0 else " four plus three is seven and so on"), "length"
    if s.endswith("<Summary>"):
        return " both give 7 </Summary> never", "stop"
    if "</Summary>" in s:
        return "\nFinal Answer: 7", "stop"
    return "Let me see. <Parallel> never", "stop"


def test_parallel_r1_issues_the_reference_requests_and_joins_them():
    eng = Script(r1_policy)
    res = decode("parallel_r1", eng, ParallelR1Config(num_paths=2, max_path_tokens=5, temperature=0.7))
    reqs = eng.requests
    assert [r.prompt for r in reqs] == [
        BASE,
        BASE + "Let me see. <Parallel><Path>",
        BASE + "Let me see. <Parallel><Path>",
        BASE + "Let me see. <Parallel><Path> check by counting up </Path><Path> four plus three is seven"
               "</Path></Parallel>\n<Summary>",
        BASE + "Let me see. <Parallel><Path> check by counting up </Path><Path> four plus three is seven"
               "</Path></Parallel>\n<Summary> both give 7 </Summary>",
    ]
    assert [r.params.stop for r in reqs] == [("<Parallel>",), ("</Path>",), ("</Path>",), ("</Summary>",),
                                             ("<Parallel>",)]
    assert not any(r.params.include_stop_str_in_output for r in reqs)
    assert res.text == reqs[-1].prompt[len(BASE):] + "\nFinal Answer: 7"
    assert [r["role"] for r in res.requests] == ["main", "path", "path", "summary", "main"]
    # path 1 stopped on </Path>; path 2 ran out of tokens and was closed by the decoder
    assert [r.get("forced_close") for r in res.requests] == [None, False, True, False, None]
    assert [r["completion_tokens"] for r in res.requests] == [4, 5, 5, 4, 4]
    assert res.total_tokens == 22 and res.critical_path_tokens == 4 + 5 + 4 + 4
    check_usage(res)
    assert eng.peak == 2, "the two paths were in flight together"
    assert [r.params.temperature for r in reqs] == [0.7, 1.0, 1.0, 0.7, 0.7], "paths at the reference's T=1.0"
    assert len({r.params.seed for r in reqs}) == 5
    assert res.blocks == 1 and res.stop_reason == "eos" and res.format == "parallel_r1"
    assert res.validation_errors == []
    trace = parse("parallel_r1", res.text)
    assert len(trace.blocks) == 1 and trace.blocks[0].width == 2


def test_parallel_r1_block_limit_stops_or_continues():
    always = lambda req: (("p </Path>", "stop") if suffix(req).endswith("<Path>") else
                          ("s </Summary>", "stop") if suffix(req).endswith("<Summary>") else ("go <Parallel>", "stop"))
    eng = Script(always)
    res = decode("parallel_r1", eng, ParallelR1Config(num_paths=3, max_blocks=2))
    assert [r["role"] for r in res.requests] == ["main", "path", "path", "path", "summary"] * 2
    assert res.blocks == 2 and res.stop_reason == "block_limit"
    assert res.text.endswith("</Summary>") and res.text.count("<Parallel>") == 2
    check_usage(res)
    eng = Script(always)
    res = decode("parallel_r1", eng, ParallelR1Config(num_paths=2, max_blocks=1, continue_after_limit=True,
                                                      newline_before_summary=False, path_temperature=None,
                                                      temperature=0.3))
    assert [r["role"] for r in res.requests] == ["main", "path", "path", "summary", "main"]
    assert eng.requests[-1].params.stop == (), "after the limit <Parallel> no longer stops the model"
    assert "</Parallel><Summary>" in res.text and res.text.endswith("go <Parallel>")
    assert {r.params.temperature for r in eng.requests} == {0.3}


def test_parallel_r1_force_open_and_token_budget():
    eng = Script(r1_policy)
    res = decode("parallel_r1", eng, ParallelR1Config(force_open=True, max_blocks=1, max_path_tokens=3))
    assert [suffix(r) for r in eng.requests[:2]] == ["<Parallel><Path>"] * 2
    assert [r["role"] for r in res.requests] == ["path", "path", "summary"]
    assert res.text.startswith("<Parallel><Path> check by counting</Path>")
    eng = Script(r1_policy)
    res = decode("parallel_r1", eng, ParallelR1Config(max_total_tokens=10, max_path_tokens=5))
    # the cap holds main requests; a block, once forked, is summarized in full
    assert res.stop_reason == "token_budget" and res.total_tokens == 4 + 5 + 5 + 4
    assert res.text.endswith("<Summary> both give 7 </Summary>")
    assert [r["role"] for r in res.requests] == ["main", "path", "path", "summary"]
    assert eng.requests[0].params.max_tokens == 10


# ---- ThreadWeaver --------------------------------------------------------------------------------

OUTLINES = "Plan.\n<Parallel>\n<Outlines>\n<Outline>1: add</Outline>\n<Outline>2.1: check</Outline>\n</Outlines> never"


def tw_policy(thread_2="\nseven holds\n</Thread> never", finish="stop"):
    def policy(req):
        s = suffix(req)
        if s.endswith("\n<Thread>\n1:"):
            return " 3 + 4 = 7\n</Thread> never", "stop"
        if s.endswith("\n<Thread>\n2.1:"):
            return thread_2, finish
        if "</Thread>" in s:
            return "</Parallel>\nSo the answer is \\boxed{7}.", "stop"
        return OUTLINES, "stop"
    return policy


def test_threadweaver_forks_one_thread_per_outline_and_joins_in_order():
    eng = Script(tw_policy())
    res = decode("threadweaver", eng, ThreadWeaverConfig())
    head = OUTLINES.removesuffix(" never")
    assert [suffix(r) for r in eng.requests] == [
        "", head + "\n<Thread>\n1:", head + "\n<Thread>\n2.1:",
        head + "\n<Thread>\n1: 3 + 4 = 7\n</Thread><Thread>\n2.1:\nseven holds\n</Thread>\n",
    ]
    assert [r.params.stop for r in eng.requests] == [("</Outlines>",), ("</Thread>",), ("</Thread>",),
                                                     ("</Outlines>",)]
    assert res.text == suffix(eng.requests[-1]) + "</Parallel>\nSo the answer is \\boxed{7}."
    assert [r["role"] for r in res.requests] == ["main", "thread", "thread", "join"]
    assert eng.peak == 2 and res.blocks == 1 and res.stop_reason == "eos"
    assert [r["completion_tokens"] for r in res.requests] == [8, 6, 3, 7]
    assert res.critical_path_tokens == 8 + 6 + 7 and res.total_tokens == 24
    check_usage(res)
    assert res.validation_errors == []
    trace = parse("threadweaver", res.text)
    assert [b.label for b in trace.blocks[0].branches] == ["1", "2.1"]


def test_threadweaver_truncated_thread_closes_the_block_and_stops():
    eng = Script(tw_policy(thread_2=" a b c d e f g h", finish="length"))
    res = decode("threadweaver", eng, ThreadWeaverConfig(max_thread_tokens=5))
    assert len(eng.requests) == 3 and res.stop_reason == "truncated_thread"
    assert res.text.endswith("</Thread><Thread>\n2.1: a b c d e\n</Thread>\n</Parallel>")
    assert [r.get("forced_close") for r in res.requests] == [None, False, True]
    check_usage(res)
    parse("threadweaver", res.text)
    # an EOS inside a thread counts as truncated too; with the switch off the decoder joins and goes on
    eng = Script(tw_policy(thread_2=" done", finish="stop"))
    res = decode("threadweaver", eng, ThreadWeaverConfig(stop_on_truncated_thread=False, conclusion=True))
    assert [r["role"] for r in res.requests] == ["main", "thread", "thread", "join"]
    assert suffix(eng.requests[-1]).endswith("<Thread>\n2.1: done\n</Thread>\n<Conclusion>\n")


def test_threadweaver_iteration_cap_and_force_open():
    def again(req):
        s = suffix(req)
        if re.search(r"<Thread>\n\d:$", s):
            return " x </Thread>", "stop"
        return "\n<Parallel>\n<Outlines>\n<Outline>1: a</Outline>\n<Outline>2: b</Outline>\n</Outlines>", "stop"

    eng = Script(again)
    res = decode("threadweaver", eng, ThreadWeaverConfig(max_iterations=3))
    assert [r["role"] for r in res.requests] == ["main", "thread", "thread"] + ["join", "thread", "thread"] * 2
    assert res.blocks == 3 and res.stop_reason == "iteration_cap"
    check_usage(res)
    eng = Script(tw_policy())
    res = decode("threadweaver", eng, ThreadWeaverConfig(force_open=True, force_outlines=3, max_iterations=1))
    assert [suffix(r).rsplit("</Outlines>", 1)[1] for r in eng.requests] == [f"\n<Thread>\n{n}:" for n in "123"]
    assert res.text.startswith("<Parallel>\n<Outlines>\n<Outline>1: part 1</Outline>")


def test_outline_numbers_come_from_the_last_outlines_without_repeats():
    from reasoning.decoders.threadweaver import outline_numbers

    text = ("<Outlines><Outline>7: old</Outline></Outlines> ... <Outlines>\n<Outline>1: a</Outline>\n"
            "<Outline> 2.1 : b</Outline><Outline>1: again</Outline><Outline>x: none</Outline></Outlines>")
    assert outline_numbers(text) == ["1", "2.1"]
    assert outline_numbers("no outlines here <Outline>1: a</Outline></Outlines>") == []


def test_threadweaver_does_not_refork_an_earlier_blocks_outlines():
    def policy(req):
        s = suffix(req)
        if re.search(r"<Thread>\n[\d.]+:$", s):
            return " x </Thread>", "stop"
        if "</Thread>" in s and s.count("</Outlines>") == 1:
            return "</Parallel> a stray </Outlines> then", "stop"
        if "</Thread>" in s:
            return " done", "stop"
        return OUTLINES, "stop"

    eng = Script(policy)
    res = decode("threadweaver", eng, ThreadWeaverConfig())
    assert [r["role"] for r in res.requests] == ["main", "thread", "thread", "join", "join"]
    assert res.blocks == 1 and res.text.endswith("a stray </Outlines> done")


# ---- ParaThinker ---------------------------------------------------------------------------------

def pt_policy(req):
    s = suffix(req)
    if s.endswith("<think1>"):
        return "first way 7 </think1> never", "stop"
    if s.endswith("<think2>"):
        return "second way 7 </think> never", "stop"  # any end tag ends a path (reference)
    if s.endswith("<think3>"):
        return "third way is long and runs out", "length"
    return " 7 </summary> never", "stop"


def test_parathinker_paths_then_summary_over_all_paths():
    eng = Script(pt_policy)
    res = decode("parathinker", eng, ParaThinkerConfig(num_paths=3, max_path_tokens=4))
    assert [suffix(r) for r in eng.requests[:3]] == ["<think1>", "<think2>", "<think3>"]
    paths = "<think1>first way 7 </think1><think2>second way 7 </think2><think3>third way is long</think3>"
    assert suffix(eng.requests[3]) == paths + "<summary>" + REFERENCE_SUMMARY_PREFIX
    assert res.text == paths + "<summary>" + REFERENCE_SUMMARY_PREFIX + " 7 </summary>"
    assert "</think2>" in eng.requests[1].params.stop and "</think>" in eng.requests[1].params.stop
    assert [r.get("forced_close") for r in res.requests] == [False, True, True, False]
    assert [r["completion_tokens"] for r in res.requests] == [4, 4, 4, 2]
    assert res.critical_path_tokens == 4 + 2 and res.total_tokens == 14 and eng.peak == 3
    check_usage(res)
    assert res.validation_errors == []
    assert parse("parathinker", res.text).blocks[0].width == 3
    eng = Script(pt_policy)
    res = decode("parathinker", eng, ParaThinkerConfig(num_paths=2, stop_on_any_end_tag=False, summary_prefix="",
                                                       assistant_prefix="<think>\n"))
    assert eng.requests[1].params.stop == ("</think2>",)
    assert suffix(eng.requests[0]) == "<think>\n<think1>"
    assert res.text.startswith("<think>\n<think1>") and "<summary> 7 </summary>" in res.text


def test_configs_are_checked():
    from reasoning.types import InputError

    with pytest.raises(InputError, match="at most 8"):
        decode("parathinker", Script(pt_policy), ParaThinkerConfig(num_paths=9))
    with pytest.raises(InputError, match="max_path_tokens"):
        decode("parallel_r1", Script(r1_policy), ParallelR1Config(max_path_tokens=0))
    with pytest.raises(InputError, match="unknown decoding method"):
        get_decoder("beam")


def test_a_failed_request_fails_its_decode_only():
    def policy(req):
        if "boom" in req.prompt:
            raise RuntimeError("engine down")
        return r1_policy(req)

    jobs = [("a", CHAT, ParallelR1Config()), ("b", "boom", ParallelR1Config())]
    outs = run_decodes(Script(policy), "parallel_r1", jobs)
    assert isinstance(outs[0], DecodeResult) and isinstance(outs[1], RuntimeError)


# ---- resume through the generation store -----------------------------------------------------------

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
    "parallel_r1": (ParallelR1Config(force_open=True, max_blocks=1, max_path_tokens=6, max_summary_tokens=6,
                                     seed=11), ["<Path>", "<Path>"], 3),
    "threadweaver": (ThreadWeaverConfig(force_open=True, max_thread_tokens=6, max_tokens=6, seed=11),
                     ["\n<Thread>\n1:", "\n<Thread>\n2:"], 2),
    "parathinker": (ParaThinkerConfig(num_paths=2, max_path_tokens=6, max_summary_tokens=6, seed=11),
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
        assert res.critical_path_tokens == critical(res) <= res.total_tokens
        trace = parse(method, res.text)
        assert len(trace.blocks) == 1 and trace.blocks[0].width == 2, (method, res.text)


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
                 "--out", str(out), "--max-thread-tokens", "4"]) == 2
    assert "--max-thread-tokens does not apply to --method parathinker" in capsys.readouterr().err


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
    cfg = EvalConfig(benchmark="toy", data=str(data), model="script", engine="script", n=3,
                     strategies=("plain", "threadweaver"), max_tokens=64, grader_timeout=10)
    eng = Script(policy)
    res = EvalRun(cfg, eng, tmp_path / "run", progress=False).run()
    [pt] = [p for p in res["points"] if p["strategy"] == "threadweaver"]
    # per decode: main 8 tokens, threads 2 + 2, join 4 -> 16 in all, 14 on the critical path
    assert pt["budget"] == 1 and pt["accuracy"] == 1.0
    assert pt["tokens"] == 16 and pt["critical_path_tokens"] == 14
    samples = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    tw = [s for s in samples if s["strategy"] == "threadweaver"]
    assert len(tw) == 6 and all(s["correct"] and s["tokens"] == 16 and s["critical_path_tokens"] == 14 for s in tw)
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
    assert pt["critical_path_tokens"] <= pt["tokens"]
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
