"""Best-of-N with a reward model, the self-fusion warning and the fusor template choice (Fusion-of-N in eval).

The local scorer runs a tiny random sequence-classification model built here from the tiny
model's config (no Hub); its choice is checked against the same model's logits computed by hand,
one conversation at a time without padding. The endpoint scorer runs against a fake vLLM
`/classify` server whose scores the test decides.
"""
from __future__ import annotations

import pytest
import torch

from eval.reward_scorers import EndpointRewardScorer, LocalRewardScorer
from eval.strategies import PoolSample, best_of_n, check_scorer, get_scorer
from reasoning.types import InputError
from tests.fake_pooling_server import FakePoolingServer

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"
CANDIDATES = ["He has \\boxed{7} apples.", "3 + 4 = 8, so \\boxed{8}.", "Seven.",
              "Tom starts with 3 and buys 4, which gives 7 in all: \\boxed{7}.", "I am not sure."]


def sample(text: str) -> PoolSample:
    return PoolSample(text, None, "none", False, "", len(text.split()), 0.0, 0)


SAMPLES = [sample(t) for t in CANDIDATES]


def build_rm(tiny_model, folder, num_labels: int, chat_template: bool = True):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(num_labels)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    config = AutoConfig.from_pretrained(tiny_model, num_labels=num_labels, pad_token_id=tokenizer.pad_token_id)
    model = AutoModelForSequenceClassification.from_config(config)
    if not chat_template:
        tokenizer.chat_template = None
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def logits_by_hand(folder, texts, chat_template: bool = True) -> torch.Tensor:
    """Each conversation alone (no batch, no padding), the way the model card would score it."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    rows = []
    for t in texts:
        if chat_template:
            text = tokenizer.apply_chat_template([{"role": "user", "content": QUESTION},
                                                  {"role": "assistant", "content": t}], tokenize=False)
            ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")
        else:
            ids = tokenizer(QUESTION, t, return_tensors="pt")
        with torch.no_grad():
            rows.append(model(**ids).logits[0])
    return torch.stack(rows)


@pytest.fixture(scope="module")
def scalar_rm(tiny_model, tmp_path_factory):
    return build_rm(tiny_model, tmp_path_factory.mktemp("rm1") / "rm", num_labels=1)


def test_local_reward_scorer_picks_the_candidate_the_models_own_logits_rank_first(scalar_rm):
    scorer = get_scorer(f"reward:{scalar_rm},batch-size=2,device=cpu")
    assert isinstance(scorer, LocalRewardScorer)
    want = logits_by_hand(scalar_rm, CANDIDATES)[:, 0]
    scores = scorer(QUESTION, SAMPLES)
    assert torch.allclose(torch.tensor(scores), want, atol=1e-4), "batched, padded scores equal single ones"
    assert best_of_n(QUESTION, SAMPLES, scorer) == int(torch.argmax(want))
    # best-of-N at budget N scores many subsets: each distinct sample reaches the model once
    for subset in ([0, 1], [1, 2, 3], [4, 0]):
        cands = [SAMPLES[i] for i in subset]
        assert subset[best_of_n(QUESTION, cands, scorer)] == max(subset, key=lambda i: (float(want[i]), -i))
    assert scorer.scored == len(CANDIDATES)


def test_a_two_class_head_scores_the_positive_class_unless_told_another(tiny_model, tmp_path):
    folder = build_rm(tiny_model, tmp_path / "rm2", num_labels=2)
    want = logits_by_hand(folder, CANDIDATES)
    positive = get_scorer(f"reward:{folder},device=cpu")(QUESTION, SAMPLES)
    negative = get_scorer(f"reward:{folder},label=0,device=cpu")(QUESTION, SAMPLES)
    assert torch.allclose(torch.tensor(positive), want[:, 1], atol=1e-4)
    assert torch.allclose(torch.tensor(negative), want[:, 0], atol=1e-4)
    with pytest.raises(InputError, match="label=2 but the model has 2 labels"):
        get_scorer(f"reward:{folder},label=2,device=cpu")


def test_without_a_chat_template_the_question_and_answer_go_in_as_a_text_pair(tiny_model, tmp_path):
    folder = build_rm(tiny_model, tmp_path / "rm3", num_labels=1, chat_template=False)
    want = logits_by_hand(folder, CANDIDATES, chat_template=False)[:, 0]
    got = LocalRewardScorer(str(folder), device="cpu")(QUESTION, SAMPLES)
    assert torch.allclose(torch.tensor(got), want, atol=1e-4)


def test_endpoint_scorer_posts_each_conversation_to_classify_and_ranks_by_the_returned_logit():
    secret = {t: float(i * 7 % 5) - 2.0 for i, t in enumerate(CANDIDATES)}  # the server's own "reward"

    def scores(body):
        return secret[body["messages"][1]["content"]]

    with FakePoolingServer(scores=scores, fail_first=[500]) as server:
        scorer = get_scorer(f"reward-endpoint:{server.url},model=my-rm,concurrency=2")
        assert isinstance(scorer, EndpointRewardScorer)
        chosen = best_of_n(QUESTION, SAMPLES, scorer)
        best_of_n(QUESTION, SAMPLES[:3], scorer)  # cached: nothing new is sent
    assert CANDIDATES[chosen] == max(CANDIDATES, key=lambda t: (secret[t], -CANDIDATES.index(t)))
    assert all(c["path"] == "/classify" for c in server.calls)
    assert len(server.calls) == len(CANDIDATES) + 1, "one request per candidate, plus the retried 500"
    bodies = [c["body"] for c in server.calls]
    sent = [b["messages"][1]["content"] for b in bodies]
    assert sorted(set(sent)) == sorted(CANDIDATES), "every candidate scored, none twice but the retried one"
    for b in bodies:
        assert b["messages"][0] == {"role": "user", "content": QUESTION} and b["messages"][1]["role"] == "assistant"
        assert b["use_activation"] is False and b["model"] == "my-rm"


def test_endpoint_errors_name_the_url():
    with FakePoolingServer(scores=lambda body: 0.0, fail_first=[400]) as server:
        with pytest.raises(InputError, match=f"{server.root}/classify answered 400"):
            get_scorer(f"reward-endpoint:{server.root}")(QUESTION, SAMPLES[:1])
        gone = server.root
    with pytest.raises(InputError, match="could not reach the reward endpoint"):
        EndpointRewardScorer(gone, max_retries=0)(QUESTION, SAMPLES[:1])


@pytest.mark.parametrize("spec, message", [
    ("reward:some/model,labels=1", "unknown option 'labels=1'"),
    ("reward:some/model,label=one", "label must be int"),
    ("reward-endpoint:,model=x", "name the reward model"),
    ("rewards", "unknown scorer 'rewards'"),
])
def test_malformed_scorer_specs_are_refused_before_anything_loads(spec, message):
    with pytest.raises(InputError, match=message):
        check_scorer(spec)


def test_eval_settings_check_refuses_a_bad_scorer_only_when_best_of_n_runs():
    from eval.config import EvalConfig
    from eval.run import check_settings
    from prompts import PromptLibrary

    with pytest.raises(InputError, match="unknown option"):
        check_settings(EvalConfig(strategies=("best_of_n",), scorer="reward:x,foo=1", n=4), PromptLibrary())
    check_settings(EvalConfig(strategies=("majority",), scorer="reward:x,foo=1", n=4), PromptLibrary())


# ---- the fusor: named, or a warning; its template ---------------------------------------------------

def test_self_fusion_is_warned_about_and_an_external_fusor_is_not():
    from eval.run import warn_self_fusion
    from reasoning.engines.scripted import ScriptedEngine

    policy = lambda req, j: ("x", "stop")  # noqa: E731
    evaluated, other = ScriptedEngine("small-model", policy=policy), ScriptedEngine("big-fusor", policy=policy)
    said: list[str] = []
    assert warn_self_fusion(evaluated, evaluated, said.append) is True
    assert warn_self_fusion(evaluated, ScriptedEngine("small-model", policy=policy), said.append) is True
    assert len(said) == 2 and "the fusor is the evaluated model (small-model)" in said[0]
    assert "--fusor-model" in said[0] and "strong external model" in said[0]
    assert warn_self_fusion(evaluated, other, said.append) is False and len(said) == 2


@pytest.mark.parametrize("template, fusion_template, want", [
    ("math/boxed", "auto", "fusion/fuse"),
    ("generic/user", "auto", "fusion/fuse_general"),
    ("generic/user", "fusion/fuse", "fusion/fuse"),
])
def test_eval_picks_the_fusor_template_by_the_answer_template(template, fusion_template, want):
    from eval.config import EvalConfig

    cfg = EvalConfig(template=template, fusion_template=fusion_template)
    cfg.resolve()
    assert cfg.fusion_template == want


def test_the_general_fuse_template_lists_every_response_and_asks_for_no_box():
    from prompts import default_library
    from reasoning.fusion import fusion_request
    from reasoning.types import SamplingParams

    req = fusion_request("Translate 'good morning' into French.", ["Bonjour.", "Bon matin."], SamplingParams(),
                         "fusion/fuse_general", default_library())
    text = req.messages[-1]["content"]
    assert "Request: Translate 'good morning' into French." in text
    assert "2 responses" in text and "--- Response 1 ---\nBonjour." in text and "--- Response 2 ---\nBon matin." in text
    assert "boxed" not in text and text.rstrip().endswith("Your response:")
