"""The GRPO rewards of rl.rewards against their formulas (values worked out by hand here)."""
from __future__ import annotations

import argparse
import pickle
from types import SimpleNamespace

import pytest

from eval.grading import Grader
from eval.records import Grade
from reasoning.settings import add_config_args, from_dict, to_dict
from reasoning.types import InputError
from rl.rewards import (
    REWARDS, AccuracyConfig, AccuracyReward, AnswerSettings, FormatCheck, FormatConfig, FormatReward,
    ParallelR1AlternatingConfig, ParallelR1AlternatingReward, ParallelR1GSM8KReward, ParallelR1Schedule,
    ThreadWeaverConfig, ThreadWeaverReward, completion_text, make_reward,
)

# ------------------------------------------------------------------ texts

PAR_OK = "think <Parallel><Path>a</Path><Path>b</Path></Parallel>\n<Summary>s</Summary>\nso \\boxed{12}"
PAR_ONE_PATH = "think <Parallel><Path>a</Path></Parallel>\n<Summary>s</Summary>\nso \\boxed{12}"  # < 2 paths
PAR_OPEN = "think <Parallel><Path>a</Path><Path>b so \\boxed{12}"  # cut mid-block: still open
PAR_NO_SUMMARY = "<Parallel><Path>a</Path><Path>b</Path></Parallel> so \\boxed{12}"
SEQ = "plain reasoning, so \\boxed{12}"
WRONG_PAR = PAR_OK.replace("{12}", "{13}")
WRONG_SEQ = "so \\boxed{13}"
NO_ANSWER = "I do not know"
EMPTY = ""


@pytest.fixture(scope="module")
def grader():
    # Every gold/answer pair below is settled by the grader's fast paths, so its math-verify
    # workers never start; it is closed all the same.
    g = Grader(timeout_s=5.0, workers=1)
    yield g
    assert g.pool_stats["workers_started"] == 0
    g.close()


class FakeGrader:
    """A grader with set verdicts: `verdict(gold, text) -> Grade`; records what it was asked."""

    def __init__(self, verdict):
        self.verdict, self.asked = verdict, []

    def grade_many(self, pairs, progress=False):
        self.asked += list(pairs)
        return [self.verdict(g, t) for g, t in pairs]


def always(correct: bool, reason: str = "exact"):
    return FakeGrader(lambda g, t: Grade(correct, "x", "boxed", reason))


def call(reward, texts, golds="12", **kw):
    golds = [golds] * len(texts) if isinstance(golds, str) or golds is None else golds
    return reward(prompts=["q"] * len(texts), completions=texts, answer=golds, **kw)


# ------------------------------------------------------------------ completions as TRL passes them


@pytest.mark.parametrize("completion, text", [
    ("abc", "abc"),
    ([{"role": "assistant", "content": "abc"}], "abc"),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "last"}], "last"),
    ([{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}], "ab"),
    ([{"role": "assistant", "content": None}], ""),
    ([], ""),
    (None, ""),
])
def test_completion_text(completion, text):
    assert completion_text(completion) == text


# ------------------------------------------------------------------ accuracy


@pytest.mark.parametrize("text, plus_minus, zero_one", [
    (SEQ, 1.0, 1.0),
    (PAR_OK, 1.0, 1.0),
    ("Final Answer: 12", 1.0, 1.0),
    (WRONG_SEQ, -1.0, 0.0),
    (NO_ANSWER, -1.0, 0.0),   # no final answer
    (EMPTY, -1.0, 0.0),       # empty completion
    ("   \n", -1.0, 0.0),
])
def test_accuracy_plus_minus_one_and_zero_one(grader, text, plus_minus, zero_one):
    pm = AccuracyReward(grader=grader)
    zo = AccuracyReward(AccuracyConfig(incorrect_reward=0.0), grader=grader)
    assert call(pm, [text]) == [plus_minus]
    assert call(zo, [text]) == [zero_one]


def test_accuracy_reads_chat_completions_and_the_answer_column(grader):
    r = AccuracyReward(grader=grader)
    chats = [[{"role": "assistant", "content": SEQ}], [{"role": "assistant", "content": WRONG_SEQ}]]
    assert r(prompts=[[{"role": "user", "content": "q"}]] * 2, completions=chats, answer=["12", "12"],
             completion_ids=[[1, 2], [3]], trainer_state=SimpleNamespace(global_step=3),
             log_extra=lambda *a: None, log_metric=lambda *a: None) == [1.0, -1.0]
    other = AccuracyReward(AccuracyConfig(answer=AnswerSettings(answer_field="solution")), grader=grader)
    assert other(prompts=["q"], completions=[SEQ], solution=["12"]) == [1.0]
    with pytest.raises(InputError, match="'answer'"):
        r(prompts=["q"], completions=[SEQ])
    with pytest.raises(InputError, match="2 values for 1"):
        r(prompts=["q"], completions=[SEQ], answer=["12", "12"])


def test_a_missing_gold_or_an_empty_text_is_wrong_without_asking_the_grader():
    fake = always(True)
    r = AccuracyReward(grader=fake)
    assert call(r, [SEQ, EMPTY, SEQ], golds=["12", "12", None]) == [1.0, -1.0, -1.0]
    assert fake.asked == [("12", SEQ)]


@pytest.mark.parametrize("reason", ["timeout", "error:worker died", "unparseable_gold"])
def test_a_grader_timeout_or_error_scores_as_incorrect(reason):
    fake = always(False, reason)
    assert call(AccuracyReward(grader=fake), [SEQ]) == [-1.0]
    assert call(ThreadWeaverReward(grader=fake), [SEQ]) == [-1.0]
    alt = ParallelR1AlternatingReward(grader=fake)
    assert call(alt, [PAR_OK], generation_batch=8) == [-1.0]  # parallel phase, valid block: still -1
    assert call(ParallelR1GSM8KReward(grader=fake), [PAR_OK]) == [0.0]


def test_the_reference_grader_is_a_setting():
    cfg = AccuracyConfig()
    cfg.answer.grading.grader = "parallel_r1_reference"
    with AccuracyReward(cfg) as r:
        # The reference verifier reads `Final Answer:` only: a lone \boxed{} is wrong.
        assert call(r, ["Final Answer: 12", "so \\boxed{12}"]) == [1.0, -1.0]


def test_a_reward_pickles_without_its_own_grader():
    cfg = AccuracyConfig()
    cfg.answer.grading.grader = "parallel_r1_reference"
    r = AccuracyReward(cfg)
    assert call(r, ["Final Answer: 12"]) == [1.0] and r._grader is not None
    copy = pickle.loads(pickle.dumps(r))
    assert copy._grader is None and call(copy, ["Final Answer: 12", "Final Answer: 1"]) == [1.0, -1.0]
    r.close()
    assert r._grader is None


def test_decode_ids_reads_completion_ids_with_special_tokens_kept(grader):
    vocab = {1: "<Parallel>", 2: "<Path>", 3: "</Path>", 4: "</Parallel>", 5: "\n<Summary>s</Summary>",
             6: " \\boxed{12}"}

    class Tok:
        def decode(self, ids, skip_special_tokens=True):
            assert skip_special_tokens is False
            return "".join(vocab[i] for i in ids)
    cfg = ParallelR1AlternatingConfig(answer=AnswerSettings(decode_ids=True))
    r = ParallelR1AlternatingReward(cfg, grader=grader, tokenizer=Tok())
    ids = [1, 2, 3, 2, 3, 4, 5, 6]
    # TRL's own text lost the (special) tags; the ids still have them: a valid block, 1.2.
    assert r(prompts=["q"], completions=["s \\boxed{12}"], completion_ids=[ids], answer=["12"],
             generation_batch=9) == [1.2]
    with pytest.raises(InputError, match="tokenizer"):
        AccuracyReward(AccuracyConfig(answer=AnswerSettings(decode_ids=True)), grader=grader)


# ------------------------------------------------------------------ format


@pytest.mark.parametrize("fmt, mode, text, valid", [
    ("parallel_r1", "reference", PAR_OK, True),
    ("parallel_r1", "reference", PAR_ONE_PATH, False),
    ("parallel_r1", "reference", PAR_OPEN, False),
    ("parallel_r1", "reference", PAR_NO_SUMMARY, False),
    ("parallel_r1", "reference", SEQ, True),     # the reference check accepts plain text
    ("parallel_r1", "reference", EMPTY, False),  # an empty completion is never valid
    # the reference check accepts text between </Path> and <Path>; the strict grammar does not
    ("parallel_r1", "reference", "<Parallel><Path>a</Path> x <Path>b</Path></Parallel><Summary>s</Summary>", True),
    ("parallel_r1", "strict", "<Parallel><Path>a</Path> x <Path>b</Path></Parallel><Summary>s</Summary>", False),
    ("threadweaver", "reference", "<Parallel>\n<Outlines>\n<Outline>1: a</Outline>\n<Outline>2: b</Outline>\n"
     "</Outlines>\n<Thread>\n1: x\n</Thread><Thread>\n2: y\n</Thread>\n<Conclusion>\nz\n</Conclusion>\n</Parallel>",
     True),
    ("threadweaver", "reference", "<Parallel>\n<Outlines>\n<Outline>1: a</Outline>\n<Outline>2: b</Outline>\n"
     "</Outlines>\n<Thread>\n1: x\n</Thread>\n</Parallel>", False),  # 2 outlines, 1 thread
    ("parathinker", "reference", "<think1>a</think1><think2>b</think2><summary>s</summary>", True),
    ("parathinker", "reference", "<think1>a</think1><summary>s</summary>", False),  # one path
])
def test_format_reward_per_format(fmt, mode, text, valid):
    r = FormatReward(FormatConfig(check=FormatCheck(format=fmt, mode=mode)))
    assert r(prompts=["q"], completions=[text]) == [1.0 if valid else 0.0]


def test_format_reward_switches():
    no_concl = ("<Parallel>\n<Outlines>\n<Outline>1: a</Outline>\n<Outline>2: b</Outline>\n</Outlines>\n"
                "<Thread>\n1: x\n</Thread><Thread>\n2: y\n</Thread>\n</Parallel>")
    tw = FormatCheck(format="threadweaver")
    assert FormatReward(FormatConfig(check=tw))(completions=[no_concl]) == [0.0]
    tw_skip = FormatCheck(format="threadweaver", skip_conclusion_check=True)
    assert FormatReward(FormatConfig(check=tw_skip))(completions=[no_concl]) == [1.0]
    signed = FormatReward(FormatConfig(valid_reward=0.5, invalid_reward=-0.5, require_block=True))
    assert signed(completions=[PAR_OK, SEQ, PAR_ONE_PATH, EMPTY]) == [0.5, -0.5, -0.5, -0.5]


# ------------------------------------------------------------------ Parallel-R1 alternating


# (text, accuracy-phase reward, parallel-phase reward), by the rule of each phase:
# accuracy: +1 correct / -1 not; parallel: 1.2 correct + block + valid, 1.0 correct + no block, else -1.
ALTERNATING = [
    (PAR_OK, 1.0, 1.2),
    (SEQ, 1.0, 1.0),
    (PAR_ONE_PATH, 1.0, -1.0),    # correct but malformed: -1 in the parallel phase
    (PAR_OPEN, 1.0, -1.0),        # correct, block left open
    (PAR_NO_SUMMARY, 1.0, -1.0),  # correct, no <Summary>
    (WRONG_PAR, -1.0, -1.0),
    (WRONG_SEQ, -1.0, -1.0),
    (NO_ANSWER, -1.0, -1.0),
    (EMPTY, -1.0, -1.0),
]


@pytest.mark.parametrize("text, accuracy_phase, parallel_phase", ALTERNATING)
def test_alternating_reward_in_each_phase(grader, text, accuracy_phase, parallel_phase):
    r = ParallelR1AlternatingReward(grader=grader)
    assert call(r, [text], generation_batch=0) == [accuracy_phase]
    assert call(r, [text], generation_batch=8) == [parallel_phase]


# Reference steps are 1-based rollout batches; accuracy-only when (step - 1) % 10 < 8.
# So steps 1..8 and 11..18 and 21..25 are accuracy, 9, 10, 19, 20 parallel; step 0 (validation
# before training): (0 - 1) % 10 = 9, parallel.
PARALLEL_REFERENCE_STEPS = {0, 9, 10, 19, 20}
# 0-based generation batch b is reference step b + 1: batches 8, 9, 18, 19 are parallel.
PARALLEL_BATCHES = {8, 9, 18, 19}


def test_schedule_reference_steps_0_to_25():
    s = ParallelR1Schedule()
    assert {step for step in range(26) if s.parallel_phase_at_step(step)} == PARALLEL_REFERENCE_STEPS
    assert {b for b in range(26) if s.parallel_phase(b)} == PARALLEL_BATCHES


@pytest.mark.parametrize("b", range(26))
def test_schedule_mapping_over_generation_batches_0_to_25(b):
    fake = always(True)
    r = ParallelR1AlternatingReward(grader=fake)
    expected = 1.2 if b in PARALLEL_BATCHES else 1.0  # a correct, valid parallel answer
    # the explicit generation-batch index, as a scalar or as a per-row column
    assert call(r, [PAR_OK], generation_batch=b) == [expected]
    assert call(r, [PAR_OK, PAR_OK], generation_batch=[b, b]) == [expected, expected]
    # TRL's trainer_state.global_step with one optimizer step per generation batch: the same index
    assert call(r, [PAR_OK], trainer_state=SimpleNamespace(global_step=b)) == [expected]


def test_schedule_with_two_optimizer_steps_per_generation_batch():
    # The reference's 2 PPO updates per rollout batch: TRL generates at global_step 0, 2, 4, ...,
    # so global_step g is batch g // 2: batches 8, 9 are global steps 16..19.
    r = ParallelR1AlternatingReward(
        ParallelR1AlternatingConfig(schedule=ParallelR1Schedule(steps_per_batch=2)), grader=always(True))
    parallel = {g for g in range(26) if call(r, [PAR_OK], trainer_state=SimpleNamespace(global_step=g)) == [1.2]}
    assert parallel == {16, 17, 18, 19}


def test_schedule_validation_passes():
    # A validation pass after g completed batches is reference step g: parallel at g = 0, 9, 10, 19, 20.
    r = ParallelR1AlternatingReward(grader=always(True))
    parallel = {g for g in range(26)
                if call(r, [PAR_OK], trainer_state=SimpleNamespace(global_step=g), reward_phase=["eval"]) == [1.2]}
    assert parallel == PARALLEL_REFERENCE_STEPS
    # the explicit index wins over trainer_state
    assert call(r, [PAR_OK], trainer_state=SimpleNamespace(global_step=0), generation_batch=3) == [1.0]


def test_schedule_needs_a_step_and_one_index_per_call():
    r = ParallelR1AlternatingReward(grader=always(True))
    with pytest.raises(InputError, match="trainer_state"):
        call(r, [PAR_OK])
    with pytest.raises(InputError, match="one batch index"):
        call(r, [PAR_OK, PAR_OK], generation_batch=[1, 2])
    with pytest.raises(InputError):
        ParallelR1Schedule(accuracy_steps=11)


def test_alternating_logs_its_phase():
    logged = []
    r = ParallelR1AlternatingReward(grader=always(True))
    call(r, [SEQ], generation_batch=9, log_metric=lambda name, value: logged.append((name, value)))
    call(r, [SEQ], generation_batch=10, log_metric=lambda name, value: logged.append((name, value)))
    assert logged == [("parallel_phase", 1.0), ("parallel_phase", 0.0)]


# ------------------------------------------------------------------ Parallel-R1 GSM8K stage


@pytest.mark.parametrize("text, reward", [
    ("<Parallel><Path>a</Path><Path>b</Path></Parallel>\n<Summary>s</Summary>\n#### 12", 1.0),  # 1 * 1 * 1
    ("no block here\n#### 12", 0.0),                                                          # is_parallel = 0
    ("<Parallel><Path>a</Path></Parallel>\n<Summary>s</Summary>\n#### 12", 0.0),              # format_ok = 0
    ("<Parallel><Path>a</Path><Path>b</Path></Parallel>\n<Summary>s</Summary>\n#### 13", 0.0),  # wrong
    (NO_ANSWER, 0.0),
    (EMPTY, 0.0),
])
def test_gsm8k_stage_reward(grader, text, reward):
    assert call(ParallelR1GSM8KReward(grader=grader), [text]) == [reward]


# ------------------------------------------------------------------ ThreadWeaver


def tw_text(thread1_words: int, thread2_words: int, answer: str = "12") -> str:
    return ("go <Parallel>\n<Outlines>\n<Outline>1: a</Outline>\n<Outline>2: b</Outline>\n</Outlines>\n"
            "<Thread>\n1: " + " ".join(["w"] * thread1_words) + "\n</Thread><Thread>\n2: "
            + " ".join(["w"] * thread2_words) + "\n</Thread>\n</Parallel> so \\boxed{" + answer + "}")


def words(text: str) -> int:
    return len(text.split())  # a tag is one word


# Counted by hand with one token per word (a tag is one token):
# outside the block: "go", "so", "\boxed{12}" = 3; the block's own tokens: <Parallel>, <Outlines>,
# <Outline> "1:" "a" </Outline>, <Outline> "2:" "b" </Outline>, </Outlines>, 2 x <Thread> </Thread>,
# </Parallel> = 16; thread i: its label "i:" and its words.
# (8, 2):   total = 3 + 16 + 9 + 3 = 31, critical = 3 + 16 + 9 = 28, ratio = 3/31 = 0.0968 < 0.2
# (20, 20): total = 3 + 16 + 21 + 21 = 61, critical = 40, ratio = 21/61 = 0.344 -> clipped to 0.2
@pytest.mark.parametrize("t1, t2, correct_reward", [
    (8, 2, 1 + 0.5 * (1 - 28 / 31)),
    (20, 20, 1 + 0.5 * 0.2),
    (5, 0, 1 + 0.5 * (1 - 25 / 26)),  # thread 2 is its label "2:" alone: total 3+16+6+1 = 26, critical 25
])
def test_threadweaver_bonus_and_clip(grader, t1, t2, correct_reward):
    r = ThreadWeaverReward(grader=grader, count_tokens=words)
    assert call(r, [tw_text(t1, t2)]) == [pytest.approx(correct_reward)]
    assert call(r, [tw_text(t1, t2, answer="13")]) == [-1.0]


def test_threadweaver_incorrect_switch_and_weights(grader):
    readme = ThreadWeaverReward(ThreadWeaverConfig(incorrect_reward=0.0), grader=grader, count_tokens=words)
    assert call(readme, [tw_text(8, 2, answer="13"), WRONG_SEQ, EMPTY, NO_ANSWER]) == [0.0, 0.0, 0.0, 0.0]
    big = ThreadWeaverReward(ThreadWeaverConfig(acceleration_factor=1.0, acceleration_clip=0.5), grader=grader,
                             count_tokens=words)
    assert call(big, [tw_text(20, 20)]) == [pytest.approx(1 + 21 / 61)]  # 0.344 < 0.5: not clipped


@pytest.mark.parametrize("text", [
    SEQ,                                                                      # no block: ratio 0
    "go <Parallel>\n<Outlines>\n<Outline>1: a</Outline>\n</Outlines> so \\boxed{12}",  # malformed block
    PAR_OK,                                                                   # another format's block
])
def test_threadweaver_without_a_valid_block_gets_no_bonus(grader, text):
    r = ThreadWeaverReward(grader=grader, count_tokens=words)
    assert call(r, [text]) == [1.0]


def test_threadweaver_lengths_from_the_rollout_and_the_tokenizer(grader):
    r = ThreadWeaverReward(grader=grader)
    # measured by the rollout on its ids: (crit, total) = (90, 100) -> 0.1; (50, 100) -> 0.5 clipped to 0.2
    out = call(r, [SEQ, SEQ, WRONG_SEQ], critical_path_len=[90, 50, 10], total_len=[100, 100, 100])
    assert out == [pytest.approx(1.05), pytest.approx(1.1), -1.0]

    class Tok:  # one token per character, tags included (as if the tags were not added tokens)
        def encode(self, text, add_special_tokens=True):
            return list(text)

    by_chars = ThreadWeaverReward(grader=grader, tokenizer=Tok())
    crit, total = by_chars.lengths(tw_text(8, 2))
    assert (crit, total) != (0, 0) and total > crit
    assert call(by_chars, [tw_text(8, 2)]) == [pytest.approx(1 + 0.5 * min(1 - crit / total, 0.2))]
    assert by_chars.lengths(EMPTY) == (0, 0)


# ------------------------------------------------------------------ configs and registry


@pytest.mark.parametrize("name", sorted(REWARDS))
def test_every_config_has_flags_with_help_and_round_trips(name):
    reward_cls, config_cls = REWARDS[name]
    parser = argparse.ArgumentParser()
    add_config_args(parser, config_cls)
    flags = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert flags and all(a.help for a in flags)
    assert from_dict(config_cls, to_dict(config_cls())) == config_cls()
    r = make_reward(name, grader=always(True)) if name != "format" else make_reward(name)
    assert r.__name__ == name and callable(r)
    r.close()
    with pytest.raises(InputError, match="unknown reward"):
        make_reward("nope")
