"""What the Fusion-of-N data tests share: a scripted pool (two teachers and a fusor answering from a
script), a run of `synthesize_fusion_data` on it, the rows it writes, and the CLI helpers."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from parafuse.cli import main
from reasoning.engines.scripted import ScriptedEngine, question_of
from reasoning.settings import from_dict
from synthesis.config import FusionDataConfig
from synthesis.fusion_data import synthesize_fusion_data


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def is_fusor_request(req) -> bool:
    return "--- Candidate 1 ---" in req.messages[-1]["content"]


class Pool:
    """Two scripted teachers (n=2 and n=1) and a scripted fusor that answer from `script`.

    script[question] = ([answer of candidate 1, 2, 3], fused answer[, fused finish reason]).
    A question in `broken` makes teacher B raise for it.
    """

    def __init__(self, script: dict[str, tuple]):
        self.script = script
        self.broken: set[str] = set()
        self.a = ScriptedEngine("teacher-a", policy=self._teacher_a)
        self.b = ScriptedEngine("teacher-b", policy=self._teacher_b)
        self.fusor = ScriptedEngine("fusor-model", policy=self._fuse)

    @staticmethod
    def candidate_text(model: str, j: int, question: str, answer: str | None) -> str:
        if answer is None:  # a candidate that never states an answer
            return f"{model} sample {j} on [{question}]: I ran out of ideas."
        return f"{model} sample {j} on [{question}]: adding up gives \\boxed{{{answer}}}."

    def expected_candidates(self, question: str) -> list[str]:
        answers = self.script[question][0]
        return [self.candidate_text("teacher-a", 0, question, answers[0]),
                self.candidate_text("teacher-a", 1, question, answers[1]),
                self.candidate_text("teacher-b", 0, question, answers[2])]

    @staticmethod
    def fused_text(question: str, answer: str) -> str:
        return f"Having read every candidate for [{question}], the result is \\boxed{{{answer}}}."

    def _teacher_a(self, req, j):
        q = question_of(req)
        return self.candidate_text("teacher-a", j, q, self.script[q][0][j]), "stop"

    def _teacher_b(self, req, j):
        q = question_of(req)
        if q in self.broken:
            raise RuntimeError(f"teacher-b crashed on {q}")
        return self.candidate_text("teacher-b", j, q, self.script[q][0][2]), "stop"

    def _fuse(self, req, j):
        q = question_of(req)
        entry = self.script[q]
        finish = entry[2] if len(entry) > 2 else "stop"
        return self.fused_text(q, entry[1]), finish

    @property
    def engines(self):
        return [self.a, self.b, self.fusor]

    def calls(self) -> int:
        return sum(len(e.calls) for e in self.engines)


def run_pool(pool: Pool, data: Path, out: Path, **cfg_kw) -> dict:
    cfg = from_dict(FusionDataConfig, dict(input=str(data), teachers=("scripted:teacher-a*2", "scripted:teacher-b"),
                                           **cfg_kw))
    logs: list[str] = []
    st = synthesize_fusion_data(cfg, [(pool.a, 2), (pool.b, 1)], pool.fusor, out, progress=False, log=logs.append)
    return st


def rows_by_prompt(out: Path) -> dict[str, dict]:
    return {r["prompt"]: r for r in read_jsonl(out / "data" / "train.jsonl")}


def words(text: str, finish: str = "stop") -> int:
    """The scripted engine's token count: whitespace words, plus one for the EOS that ended the text."""
    return len(text.split()) + (finish == "stop")


def majority_score(answers: list[str | None], gold: str) -> float:
    """maj@k with ties split fairly: the mean correctness over the tied largest vote groups
    (a candidate without an answer casts no vote)."""
    counts = Counter(a for a in answers if a is not None)
    top = max(counts.values())
    tied = [a for a, c in counts.items() if c == top]
    return sum(a == gold for a in tied) / len(tied)


SUMS = [(5, 7), (20, 22), (9, 30)]


def sum_rows():
    return [{"question": f"What is {a} + {b}?", "answer": str(a + b)} for a, b in SUMS]


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def cli_base(tmp_path, tiny_model, data):
    return ["synth", "fusion", "--input", data, "--engine", "hf", "--model", tiny_model, "--out", tmp_path / "o",
            "--no-progress"]


def counting_factory(monkeypatch) -> list[dict]:
    """Replace the engine factory with one that records each engine it builds and answers from a script."""
    built = []

    def factory(kind, model, **options):
        engine = ScriptedEngine(model, policy=lambda req, j: (f"sample {j}: \\boxed{{12}}", "stop"))
        record = {"kind": kind, "model": model, "options": options, "closed": 0}
        engine.close = lambda: record.update(closed=record["closed"] + 1)
        built.append(record)
        return engine

    monkeypatch.setattr("reasoning.engines.make_engine", factory)
    return built
