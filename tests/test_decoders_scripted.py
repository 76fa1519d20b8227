"""Parallel-thinking decoders driven by the `Script` engine double (tests/decoder_double.py): the
requests each decoder issues, its joins, usage accounting, limits and config checks.
"""
from __future__ import annotations

import dataclasses
import re

import pytest
from decoder_double import BASE, CHAT, OUTLINES, Script, check_usage, decode, parse, suffix, tw_policy

from reasoning.decoders import (
    DecodeResult,
    ParallelR1Config,
    ParaThinkerConfig,
    ThreadWeaverConfig,
    get_decoder,
    run_decodes,
)
from reasoning.decoders.parathinker import REFERENCE_SUMMARY_PREFIX
from reasoning.sampling import Sampling
from reasoning.settings import from_dict
from reasoning.types import Request


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
    res = decode("parallel_r1", eng, from_dict(ParallelR1Config, dict(num_paths=2, max_path_tokens=5, temperature=0.7)))
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
    assert res.total_tokens == 22 and res.generated_critical_path_tokens == 4 + 5 + 4 + 4
    # the response's L_crit (words): outside "Let me see." and "Final Answer: 7", 8 tags and the summary's
    # 3 words, the longer path's 5; the tags the decoder wrote count too
    assert res.critical_path_tokens == 3 + 3 + 8 + 3 + 5 and res.response_tokens == 3 + 3 + 8 + 3 + 4 + 5
    check_usage(res, eng)
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
    res = decode("parallel_r1", eng, from_dict(ParallelR1Config, dict(num_paths=2, max_blocks=1,
                                                                      continue_after_limit=True,
                                                      newline_before_summary=False, path_temperature=None,
                                                      temperature=0.3)))
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
    assert res.generated_critical_path_tokens == 8 + 6 + 7 and res.total_tokens == 24
    check_usage(res, eng)
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
    res = decode("parathinker", eng, ParaThinkerConfig(num_paths=3, max_path_tokens=4, first_finish=False))
    assert [suffix(r) for r in eng.requests[:3]] == ["<think1>", "<think2>", "<think3>"]
    paths = "<think1>first way 7 </think1><think2>second way 7 </think2><think3>third way is long</think3>"
    assert suffix(eng.requests[3]) == paths + "<summary>" + REFERENCE_SUMMARY_PREFIX
    assert res.text == paths + "<summary>" + REFERENCE_SUMMARY_PREFIX + " 7 </summary>"
    assert "</think2>" in eng.requests[1].params.stop and "</think>" in eng.requests[1].params.stop
    assert [r.get("forced_close") for r in res.requests] == [False, True, True, False]
    assert [r["completion_tokens"] for r in res.requests] == [4, 4, 4, 2]
    assert res.generated_critical_path_tokens == 4 + 2 and res.total_tokens == 14 and eng.peak == 3
    check_usage(res, eng)
    assert res.validation_errors == []
    assert parse("parathinker", res.text).blocks[0].width == 3
    eng = Script(pt_policy)
    res = decode("parathinker", eng, ParaThinkerConfig(num_paths=2, stop_on_any_end_tag=False, summary_prefix="",
                                                       assistant_prefix="<think>\n", first_finish=False))
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




def test_segments_split_the_trace_into_what_the_model_wrote_and_what_the_decoder_inserted():
    eng = Script(tw_policy())
    res = decode("threadweaver", eng, ThreadWeaverConfig())
    assert "".join(s.text for s in res.segments) == res.text
    inserted = [s.text for s in res.segments if s.source == "inserted"]
    assert inserted == ["\n<Thread>\n1:", "<Thread>\n2.1:", "\n"], "exactly the decoder's own strings"
    generated = [(s.request, s.text) for s in res.segments if s.source == "generated"]
    # The tag a model stopped on is part of what it generated; each piece names its request.
    assert generated == [(0, OUTLINES.removesuffix(" never")), (1, " 3 + 4 = 7\n</Thread>"),
                         (2, "\nseven holds\n</Thread>"), (3, "</Parallel>\nSo the answer is \\boxed{7}.")]
    assert [res.requests[i]["role"] for i, _ in generated] == ["main", "thread", "thread", "join"]


def test_a_stop_tag_the_decoder_replaces_stays_recorded_on_the_segment():
    """ParaThinker ends a path on any end tag but closes it with its own: the sampled tag is not in the trace."""
    def policy(req):
        return " wrote </think2> more", "stop"

    res = decode("parathinker", Script(policy), ParaThinkerConfig.from_dict(dict(num_paths=1, summary_prefix="")))
    path = next(s for s in res.segments if s.source == "generated")
    assert path.text == " wrote " and path.stop_string == "</think2>"
    assert "<think1> wrote </think1>" in res.text


def test_the_method_registry_is_the_one_list_every_consumer_reads():
    from eval.strategies import DECODED, STRATEGIES
    from reasoning.decoders import CONFIGS, DecoderConfig
    from reasoning.decoders import METHODS as DECODER_METHODS
    from reasoning.methods import REGISTRY

    assert tuple(REGISTRY) == DECODER_METHODS == DECODED and set(DECODED) <= set(STRATEGIES)
    for name, method in REGISTRY.items():
        assert method.format.NAME == name and set(method.tags) == set(method.format.TAGS)
        assert CONFIGS[name] is method.config_class and issubclass(method.config_class, DecoderConfig)
        fields = {f.name for f in dataclasses.fields(method.config_class)}
        assert set(method.phase_caps) <= fields and set(method.follow_run) <= fields
        cfg = method.config_for_run(Sampling(temperature=0.3, max_tokens=7))
        assert cfg.sampling.temperature == 0.3 and all(getattr(cfg, cap) == 7 for cap in method.phase_caps)


def test_threadweaver_stops_when_outlines_cannot_be_forked_and_never_repeats_a_request():
    # A model that keeps closing empty outline lists: the decoder continues once past it (a request with
    # its own id and seed), then stops, instead of re-sending the same main request until the context overflows.
    eng = Script(lambda req: ("\n<Parallel>\n<Outlines>\n</Outlines>", "stop"))
    res = decode("threadweaver", eng, from_dict(ThreadWeaverConfig, dict(seed=3)))
    assert res.stop_reason == "unforkable_outlines" and res.blocks == 0
    assert len(eng.requests) == 2
    assert len({r.id for r in eng.requests}) == 2 and len({r.params.seed for r in eng.requests}) == 2
    assert len({r.key_extra for r in eng.requests}) == 2
    once = decode("threadweaver", Script(lambda req: ("\n<Parallel>\n<Outlines>\n</Outlines>", "stop")),
                  from_dict(ThreadWeaverConfig, dict(max_unforkable_outlines=1)))
    assert once.stop_reason == "unforkable_outlines" and len(once.requests) == 1


# ---- ParaThinker First-Finish ------------------------------------------------------------------------

FULL = {1: "a1 a2 a3 a4 a5 </think1> junk", 2: " ".join(f"b{i}" for i in range(1, 30)),
        3: "c1 c2 c3 c4 c5 c6 c7 </think3> junk"}


def ff_policy(req):
    """Path k writes FULL[k], continued across rounds from what its prompt already holds."""
    s = suffix(req)
    if "<summary>" in s:
        return " 7 </summary>", "stop"
    k = max(range(1, 4), key=lambda j: s.rfind(f"<think{j}>"))
    written = s[s.rfind(f"<think{k}>") + len(f"<think{k}>"):]
    assert FULL[k].startswith(written), (k, written)
    return FULL[k][len(written):], "stop"


def test_first_finish_cuts_every_path_at_the_first_finishers_length():
    eng = Script(ff_policy)
    cfg = ParaThinkerConfig(num_paths=3, max_path_tokens=20, first_finish_block=4, summary_prefix="")
    res = decode("parathinker", eng, cfg)
    # two lockstep rounds of 4 tokens; path 1 ends in round 2 at 6 tokens (5 words + its end tag)
    assert [suffix(r) for r in eng.requests[:6]] == [
        "<think1>", "<think2>", "<think3>",
        "<think1>a1 a2 a3 a4", "<think2>b1 b2 b3 b4", "<think3>c1 c2 c3 c4"]
    assert [r.params.max_tokens for r in eng.requests[:6]] == [4] * 6
    paths = "<think1>a1 a2 a3 a4 a5 </think1><think2>b1 b2 b3 b4 b5 b6<think3>c1 c2 c3 c4 c5 c6"
    assert suffix(eng.requests[6]) == paths + "<summary>", "the summary reads the cut paths, no end tags"
    assert res.text == paths + "<summary> 7 </summary>"
    rows = res.requests
    assert [r.get("round") for r in rows[:6]] == [0, 0, 0, 1, 1, 1]
    # path 3 also ended in round 2, but later (8 tokens): at the step path 1 ended it had 6, so it is cut
    assert [(r["completion_tokens"], r.get("generated_tokens"), r.get("cut")) for r in rows[3:6]] == [
        (2, None, None), (2, 4, True), (2, 4, True)]
    assert res.total_tokens == 3 * 6 + 2 and res.generated_critical_path_tokens == 6 + 2
    assert res.validation_errors == []
    from reasoning.formats import parathinker as fmt

    assert fmt.validate(res.text), "the strict grammar without first_finish reports the cut paths"
    trace = fmt.parse(res.text, first_finish=True)
    assert trace.blocks[0].raw["cut"] == [1, 2] and [b.text for b in trace.blocks[0].branches][1] == "b1 b2 b3 b4 b5 b6"
    assert fmt.serialize(trace) == res.text


def test_first_finish_in_one_request_per_path_and_all_paths_to_the_end():
    eng = Script(ff_policy)
    res = decode("parathinker", eng, ParaThinkerConfig(num_paths=3, max_path_tokens=20, first_finish_block=None))
    assert len(eng.requests) == 4 and [r.params.max_tokens for r in eng.requests[:3]] == [20] * 3
    assert "<think2>b1 b2 b3 b4 b5 b6<think3>c1 c2 c3 c4 c5 c6<summary>" in res.text
    assert res.total_tokens == 18 + 2 and res.generated_critical_path_tokens == 6 + 2
    eng = Script(ff_policy)
    res = decode("parathinker", eng, ParaThinkerConfig(num_paths=3, max_path_tokens=20, first_finish=False))
    assert [r["completion_tokens"] for r in res.requests] == [6, 20, 8, 2]
    assert res.generated_critical_path_tokens == 20 + 2 and "</think3><summary>" in res.text


def test_parathinker_total_cap_holds_paths_and_summary():
    eng = Script(ff_policy)
    cfg = ParaThinkerConfig(num_paths=3, max_path_tokens=20, first_finish_block=3, max_total_tokens=17)
    res = decode("parathinker", eng, cfg)
    # the summary keeps the share of a fourth path (17 // 4 = 4); each path gets (17 - 4) // 3 = 4 tokens,
    # in rounds of 3 and 1; nobody ended, so the decoder closes every path, and the summary gets 17 - 12 = 5
    assert [r.params.max_tokens for r in eng.requests] == [3, 3, 3, 1, 1, 1, 5]
    assert [r["forced_close"] for r in res.requests[:6]] == [False] * 3 + [True] * 3
    assert "<think1>a1 a2 a3 a4</think1><think2>b1 b2 b3 b4</think2>" in res.text
    assert res.total_tokens == 12 + 2 <= 17
    with pytest.raises(Exception, match="max_total_tokens 3"):
        decode("parathinker", Script(ff_policy), ParaThinkerConfig(num_paths=3, max_total_tokens=3))


def test_a_boxed_answer_is_no_parallel_r1_format_problem_but_no_answer_at_all_is():
    from reasoning.decoders.base import validate

    body = "Think. <Parallel><Path>a</Path><Path>b</Path></Parallel><Summary>s</Summary> So "
    assert validate("parallel_r1", body + "\\boxed{4}") == []
    assert validate("parallel_r1", body + "\nFinal Answer: 4") == []
    missing = validate("parallel_r1", body + "it is 4.")
    assert missing and any("Final Answer" in problem for problem in missing)
    # The boxed exemption is for the answer line only: a broken block is still a problem.
    assert validate("parallel_r1", "<Parallel><Path>a</Path> \\boxed{4}") != []
