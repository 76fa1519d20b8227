"""Reward-model scorers for best-of-N: `reward:PATH_OR_ID` (in-process) and `reward-endpoint:URL` (served).

Fusion-of-N compares generative fusion with best-of-N whose scorer is a reward model (Khairi et
al., 2025, "Making, not Taking, the Best of N", the BoN baseline: y* = argmax_y S(y, x) with S a
reward model). The built-in `agreement` scorer makes best-of-N a form of self-consistency; these
scorers give the paper's comparison.

Both score a candidate as the conversation (user: question, assistant: candidate):

- `reward:PATH_OR_ID[,label=K][,batch-size=B][,device=D][,max-length=L]` loads a transformers
  `AutoModelForSequenceClassification`. The score is the logit of its single label (a scalar
  reward head, as most RMs have), or of class K (default 1, the "positive" class) when it has
  several. The text is the tokenizer's chat template when it has one, else the
  (question, answer) pair the way cross-encoder RMs read it. Longer inputs are cut from the
  left to `max-length` (default: the model's position limit), keeping the answer's end.
- `reward-endpoint:URL[,model=NAME][,label=K][,api-key-env=VAR][,concurrency=C]` posts each
  candidate to vLLM's `/classify` route (`vllm serve RM --runner pooling`; the server applies the
  RM's own chat template to `messages`), with `use_activation: false` so `probs` holds the raw
  logits and the score is the same logit as above. `/classify` is chosen over `/pooling` because
  it returns one vector per sequence for sequence-classification RMs, and over `/score` because
  that one pairs two texts for cross-encoders rather than scoring a conversation.

Scores are cached per (question, candidate): best-of-N at budget N scores many subsets of one
pool, and each distinct sample is sent to the model once.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reasoning.types import InputError

LOCAL_PREFIX = "reward:"
ENDPOINT_PREFIX = "reward-endpoint:"
DEFAULT_LABEL = 1  # the positive class of a multi-class head (e.g. [bad, good])


def parse_options(spec: str, head: str, allowed: dict[str, type]) -> tuple[str, dict[str, Any]]:
    """`TARGET,key=value,...` -> (TARGET, {key: typed value}); keys with `-` or `_`."""
    target, *items = head.split(",")
    options: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or key not in allowed:
            raise InputError(f"--scorer {spec!r}: unknown option {item!r}; options: "
                             + ", ".join(k.replace("_", "-") + "=..." for k in allowed))
        try:
            options[key] = allowed[key](value.strip())
        except ValueError:
            raise InputError(f"--scorer {spec!r}: {key.replace('_', '-')} must be {allowed[key].__name__}, "
                             f"got {value!r}") from None
    if not target.strip():
        raise InputError(f"--scorer {spec!r}: name the reward model after the colon")
    return target.strip(), options


class _Cached:
    """The shared part: a scorer callable over PoolSamples with a per-(question, text) cache."""

    name = "reward"

    def __init__(self):
        self._cache: dict[tuple[str, str], float] = {}
        self.scored = 0  # texts sent to the model (cache misses)

    def __call__(self, question: str, samples: Sequence[Any]) -> list[float]:
        texts = [s.text for s in samples]
        todo = list(dict.fromkeys(t for t in texts if (question, t) not in self._cache))
        if todo:
            for text, score in zip(todo, self.score_texts(question, todo)):
                self._cache[(question, text)] = float(score)
            self.scored += len(todo)
        return [self._cache[(question, t)] for t in texts]

    def score_texts(self, question: str, texts: Sequence[str]) -> list[float]:
        raise NotImplementedError


class LocalRewardScorer(_Cached):
    """`reward:PATH_OR_ID`: a sequence-classification reward model run in this process."""

    def __init__(self, model: str, label: int | None = None, batch_size: int = 8, device: str | None = None,
                 max_length: int | None = None):
        super().__init__()
        if batch_size < 1:
            raise InputError(f"reward scorer batch-size must be >= 1, got {batch_size}")
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.model_name, self.batch_size = model, batch_size
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForSequenceClassification.from_pretrained(model)
        except (OSError, ValueError) as exc:
            raise InputError(f"--scorer reward:{model}: could not load a sequence-classification model "
                             f"({str(exc).strip()[:300]}); give a local directory or a Hub id of a reward "
                             f"model") from exc
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        labels = self.model.config.num_labels
        self.label = 0 if labels == 1 else (DEFAULT_LABEL if label is None else label)
        if not 0 <= self.label < labels:
            raise InputError(f"--scorer reward:{model}: label={self.label} but the model has {labels} labels")
        if self.tokenizer.pad_token is None:  # decoder RMs often ship without one; padding needs some id
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.tokenizer.padding_side = "right"
        self.tokenizer.truncation_side = "left"
        limit = getattr(self.model.config, "max_position_embeddings", None)
        self.max_length = max_length or limit or 4096

    @property
    def name(self) -> str:
        return LOCAL_PREFIX + self.model_name

    def encode(self, question: str, texts: Sequence[str]):
        """The batch the model reads for these candidates (also what a test can re-run by hand)."""
        if self.tokenizer.chat_template:
            rendered = [self.tokenizer.apply_chat_template(
                [{"role": "user", "content": question}, {"role": "assistant", "content": t}], tokenize=False)
                for t in texts]
            return self.tokenizer(rendered, padding=True, truncation=True, max_length=self.max_length,
                                  add_special_tokens=False, return_tensors="pt")
        return self.tokenizer([question] * len(texts), list(texts), padding=True, truncation=True,
                              max_length=self.max_length, return_tensors="pt")

    def score_texts(self, question: str, texts: Sequence[str]) -> list[float]:
        import torch

        out: list[float] = []
        for i in range(0, len(texts), self.batch_size):
            batch = self.encode(question, texts[i:i + self.batch_size]).to(self.device)
            with torch.inference_mode():
                logits = self.model(**batch).logits
            out += logits[:, self.label].float().cpu().tolist()
        return out


class EndpointRewardScorer(_Cached):
    """`reward-endpoint:URL`: a reward model served by vLLM (`/classify`), one request per candidate."""

    def __init__(self, url: str, model: str | None = None, label: int | None = None,
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8, timeout_s: float = 120.0,
                 max_retries: int = 3):
        super().__init__()
        if concurrency < 1:
            raise InputError(f"reward endpoint concurrency must be >= 1, got {concurrency}")
        base = url.rstrip("/")
        base = base.removesuffix("/classify").removesuffix("/v1")  # vLLM serves /classify at the root
        if not base.startswith(("http://", "https://")):
            raise InputError(f"--scorer reward-endpoint:{url}: give the server's URL, e.g. http://localhost:8000")
        self.url, self.model_name, self.label = base + "/classify", model, label
        self.concurrency, self.timeout_s, self.max_retries = concurrency, timeout_s, max_retries
        key = os.environ.get(api_key_env) if api_key_env else None
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}

    @property
    def name(self) -> str:
        return ENDPOINT_PREFIX + self.url

    def _one(self, client, question: str, text: str) -> float:
        import time

        import httpx

        body: dict[str, Any] = {"messages": [{"role": "user", "content": question},
                                             {"role": "assistant", "content": text}], "use_activation": False}
        if self.model_name:
            body["model"] = self.model_name
        for attempt in range(self.max_retries + 1):
            try:
                reply = client.post(self.url, json=body, headers=self._headers)
            except httpx.TransportError as exc:
                if attempt == self.max_retries:
                    raise InputError(f"could not reach the reward endpoint {self.url} ({exc}): start the RM "
                                     f"server (vllm serve RM --runner pooling) or fix the URL") from exc
            else:
                if reply.status_code == 200:
                    return self._logit(reply.json())
                retryable = reply.status_code in (408, 429) or reply.status_code >= 500
                if not retryable or attempt == self.max_retries:
                    raise InputError(f"the reward endpoint {self.url} answered {reply.status_code}: "
                                     f"{reply.text[:300]}")
            time.sleep(min(8.0, 0.5 * 2 ** attempt))
        raise AssertionError("unreachable")

    def _logit(self, payload: dict[str, Any]) -> float:
        try:
            probs = payload["data"][0]["probs"]
        except (KeyError, IndexError, TypeError):
            raise InputError(f"the reward endpoint {self.url} did not answer like vLLM's /classify "
                             f"(data[0].probs): {str(payload)[:200]}") from None
        label = 0 if len(probs) == 1 else (DEFAULT_LABEL if self.label is None else self.label)
        if not 0 <= label < len(probs):
            raise InputError(f"reward endpoint {self.url}: label={label} but the model has {len(probs)} classes")
        return float(probs[label])

    def score_texts(self, question: str, texts: Sequence[str]) -> list[float]:
        import httpx

        with httpx.Client(timeout=self.timeout_s) as client, ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda t: self._one(client, question, t), texts))


ENDPOINT_OPTIONS = {"model": str, "label": int, "api_key_env": str, "concurrency": int}
LOCAL_OPTIONS = {"label": int, "batch_size": int, "device": str, "max_length": int}


def parse_reward_spec(spec: str) -> tuple[str, str, dict[str, Any]] | None:
    """("endpoint" | "local", URL or model, options) of a reward `--scorer` spec, checked without
    loading anything; None when the spec names no reward scorer."""
    if spec.startswith(ENDPOINT_PREFIX):
        return ("endpoint", *parse_options(spec, spec[len(ENDPOINT_PREFIX):], ENDPOINT_OPTIONS))
    if spec.startswith(LOCAL_PREFIX):
        return ("local", *parse_options(spec, spec[len(LOCAL_PREFIX):], LOCAL_OPTIONS))
    return None


def reward_scorer(spec: str) -> _Cached | None:
    """The reward scorer a `--scorer` spec names (the model loaded now), or None when it names none."""
    parsed = parse_reward_spec(spec)
    if parsed is None:
        return None
    kind, target, options = parsed
    return EndpointRewardScorer(target, **options) if kind == "endpoint" else LocalRewardScorer(target, **options)
