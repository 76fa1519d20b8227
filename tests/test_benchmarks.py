"""eval.benchmarks: local layouts, gold parsing per format, stable ids, errors, the Hub path."""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from eval.benchmarks import BENCHMARKS, canonical_number, load_benchmark, load_file, parse_gold
from reasoning.types import InputError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def golds(problems):
    return [p.gold for p in problems]


# --------------------------------------------------------------------------- per benchmark

GSM_ROWS = [
    {"question": "Natalia sold clips. How many?", "answer": "48/2 = <<48/2=24>>24\n#### 72"},
    {"question": "How much money?", "answer": "Steps #### are sometimes in the text\n#### 1,450,000"},
    {"question": "What is the temperature change?", "answer": "It fell.\n#### -10"},
    {"question": "No final line here", "answer": "Just reasoning, no marker."},
    {"question": "Empty final", "answer": "Reasoning\n####   "},
]


def test_gsm8k_gold(tmp_path):
    write_jsonl(tmp_path / "gsm8k" / "test.jsonl", GSM_ROWS)
    ps = load_benchmark("gsm8k", tmp_path)
    assert golds(ps) == ["72", "1450000", "-10", None, None]
    assert "####" in ps[3].gold_error and "test.jsonl:4" in ps[3].gold_error
    assert "test.jsonl:5" in ps[4].gold_error
    assert all(p.benchmark == "gsm8k" for p in ps)
    assert ps[0].question == GSM_ROWS[0]["question"]
    assert all(p.id.startswith("gsm8k-") for p in ps)


MATH_SOLUTION = r"So $x = \frac{1}{2}$, and at first we guessed $\boxed{3}$. Finally $\boxed{\frac{\sqrt{2}}{2}}$."


def test_math500_gold_answer_field_then_last_boxed(tmp_path):
    rows = [
        {"problem": "P1", "solution": MATH_SOLUTION, "answer": r"\frac{\sqrt{2}}{2}", "subject": "Algebra",
         "level": 3, "unique_id": "test/algebra/1.json"},
        # no answer field: the last \boxed of the solution, nested braces kept whole
        {"problem": "P2", "solution": MATH_SOLUTION, "subject": "Geometry", "level": 5,
         "unique_id": "test/geometry/2.json"},
        {"problem": "P3", "solution": r"Deeply $\boxed{\left( 3, \frac{\pi}{2} \right)}$", "answer": "",
         "unique_id": "test/precalculus/3.json"},
        {"problem": "P4", "solution": "No box at all.", "unique_id": "test/algebra/4.json"},
        {"problem": "P5", "solution": r"Unclosed \boxed{\frac{1}{2}", "unique_id": "test/algebra/5.json"},
        # as in two MATH train records: an empty box
        {"problem": "P6", "solution": r"so there are $\boxed{}$ primes", "unique_id": "test/algebra/6.json"},
    ]
    write_jsonl(tmp_path / "math500" / "test.jsonl", rows)
    ps = load_benchmark("math500", tmp_path)
    assert golds(ps) == [r"\frac{\sqrt{2}}{2}", r"\frac{\sqrt{2}}{2}", r"\left( 3, \frac{\pi}{2} \right)", None, None,
                         None]
    assert "boxed" in ps[3].gold_error and "test.jsonl:4" in ps[3].gold_error
    assert ps[4].gold_error
    assert "empty" in ps[5].gold_error and "test.jsonl:6" in ps[5].gold_error
    assert ps[0].id == "math500-test/algebra/1.json"
    assert ps[0].meta["level"] == 3 and ps[0].meta["subject"] == "Algebra"
    assert ps[1].meta["level"] == 5 and ps[1].meta["subject"] == "Geometry"


def test_aime_gold_zero_padding(tmp_path):
    rows = [
        {"id": 60, "problem": "A1", "answer": "025"},
        {"id": 61, "problem": "A2", "answer": "007"},
        {"id": 62, "problem": "A3", "answer": "000"},
        {"id": 63, "problem": "A4", "answer": 204},
        {"id": 64, "problem": "A5", "answer": "twelve"},
        {"id": 65, "problem": "A6", "answer": "1.5"},
        {"id": 66, "problem": "A7"},
        {"id": 67, "problem": "A8", "answer": r"\boxed{080}"},
    ]
    write_jsonl(tmp_path / "aime24" / "test.jsonl", rows)
    ps = load_benchmark("aime24", tmp_path)
    assert golds(ps) == ["25", "7", "0", "204", None, None, None, "80"]
    assert "not an integer" in ps[4].gold_error and "twelve" in ps[4].gold_error
    assert "not an integer" in ps[5].gold_error
    assert "missing" in ps[6].gold_error and "test.jsonl:7" in ps[6].gold_error
    assert [p.id for p in ps[:2]] == ["aime24-60", "aime24-61"]


def test_aime25_local_layout_uses_question_field_and_hash_ids(tmp_path):
    rows = [{"question": "Find the sum of all bases.", "answer": "70"},
            {"question": "Find the area of the heptagon.", "answer": "588"}]
    write_jsonl(tmp_path / "aime25" / "test.jsonl", rows)
    ps = load_benchmark("aime25", tmp_path)
    assert golds(ps) == ["70", "588"]
    assert ps[0].question == "Find the sum of all bases."
    assert ps[0].id.startswith("aime25-") and len(ps[0].id) == len("aime25-") + 12


def test_amc_gold_floats(tmp_path):
    rows = [
        {"id": 0, "problem": "C0", "answer": 27.0},
        {"id": 1, "problem": "C1", "answer": -1.0},
        {"id": 2, "problem": "C2", "answer": 3159.0},
        {"id": 3, "problem": "C3", "answer": 2.5},
        {"id": 4, "problem": "C4", "answer": "27.0"},
        {"id": 5, "problem": "C5", "answer": None},
        {"id": 6, "problem": "C6", "answer": r"\frac{1}{2}"},
    ]
    write_jsonl(tmp_path / "amc23" / "test.jsonl", rows)
    ps = load_benchmark("amc23", tmp_path)
    assert golds(ps) == ["27", "-1", "3159", "2.5", "27", None, r"\frac{1}{2}"]
    assert ps[5].gold_error and "test.jsonl:6" in ps[5].gold_error
    assert ps[0].id == "amc23-0"


def test_parse_gold_and_canonical_number():
    assert parse_gold("#### 2,125", "gsm8k") == ("2125", None)
    assert parse_gold("x\n#### -3", "auto") == ("-3", None)
    assert parse_gold(r"so \boxed{\frac{1}{2}}", "auto") == (r"\frac{1}{2}", None)
    assert parse_gold(r"so \boxed{}", "math") == (None, "the last \\boxed{} is empty")
    assert parse_gold(27.0, "auto") == ("27", None)
    assert parse_gold("007", "auto") == ("7", None)
    assert parse_gold("x+1", "auto") == ("x+1", None)
    assert parse_gold(True, "auto")[0] is None
    assert parse_gold(None, "math")[0] is None
    assert parse_gold(float("nan"), "amc")[0] is None
    with pytest.raises(InputError, match="gold format"):
        parse_gold("1", "nope")
    assert canonical_number("2.50") == "2.5"
    assert canonical_number("-0.0") == "0"
    assert canonical_number("1,000") == "1000"
    assert canonical_number("1,00") is None
    assert canonical_number(".5") == "0.5"
    assert canonical_number("abc") is None


# --------------------------------------------------------------------------- ids

def test_ids_survive_reordering(tmp_path):
    write_jsonl(tmp_path / "a" / "gsm8k" / "test.jsonl", GSM_ROWS)
    write_jsonl(tmp_path / "b" / "gsm8k" / "test.jsonl", list(reversed(GSM_ROWS)))
    a = {p.question: p.id for p in load_benchmark("gsm8k", tmp_path / "a")}
    b = {p.question: p.id for p in load_benchmark("gsm8k", tmp_path / "b")}
    assert a == b
    assert len(set(a.values())) == len(GSM_ROWS)


def test_hash_ignores_whitespace_differences(tmp_path):
    write_jsonl(tmp_path / "x.jsonl", [{"q": "What is  1+1?\n", "a": "2"}])
    write_jsonl(tmp_path / "y.jsonl", [{"q": "What is 1+1?", "a": "2"}])
    assert load_file(tmp_path / "x.jsonl", "q", "a", name="t")[0].id == load_file(
        tmp_path / "y.jsonl", "q", "a", name="t")[0].id


def test_duplicate_ids_get_suffixes(tmp_path):
    rows = [{"q": "Same question", "a": "1"}, {"q": "Other", "a": "2"}, {"q": "Same question", "a": "1"},
            {"q": "Same question", "a": "3"}]
    ps = load_file(write_jsonl(tmp_path / "dup.jsonl", rows), "q", "a", name="dup")
    ids = [p.id for p in ps]
    assert len(set(ids)) == 4
    assert ids[2] == ids[0] + "-2" and ids[3] == ids[0] + "-3"
    rows = [{"id": 5, "q": "x", "a": "1"}, {"id": 5, "q": "y", "a": "2"}]
    ps = load_file(write_jsonl(tmp_path / "dup2.jsonl", rows), "q", "a", id_field="id", name="d")
    assert [p.id for p in ps] == ["d-5", "d-5-2"]


def test_own_ids_stable_under_reordering(tmp_path):
    rows = [{"id": i, "problem": f"C{i}", "answer": float(i)} for i in range(5)]
    write_jsonl(tmp_path / "a" / "amc23" / "test.jsonl", rows)
    write_jsonl(tmp_path / "b" / "amc23" / "test.jsonl", rows[::-1])
    a = {p.question: (p.id, p.gold) for p in load_benchmark("amc23", tmp_path / "a")}
    b = {p.question: (p.id, p.gold) for p in load_benchmark("amc23", tmp_path / "b")}
    assert a == b


# --------------------------------------------------------------------------- errors, limit

def test_unknown_benchmark_lists_known_and_generic_option():
    with pytest.raises(InputError) as e:
        load_benchmark("gsm9k")
    msg = str(e.value)
    assert "gsm9k" in msg
    for name in BENCHMARKS:
        assert name in msg
    assert "--data" in msg and "--question-field" in msg and "--answer-field" in msg


def test_missing_local_file_names_path_and_layout(tmp_path):
    with pytest.raises(InputError, match=r"math500/test\.jsonl"):
        load_benchmark("math500", tmp_path)


def test_generic_file_missing_question_field_names_file_line_field(tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl", [{"prompt": "a", "gold": "1"}, {"text": "b", "gold": "2"}])
    with pytest.raises(InputError) as e:
        load_file(path, "prompt", "gold")
    msg = str(e.value)
    assert f"{path}:2" in msg and "'prompt'" in msg and "--question-field" in msg


def test_generic_file_answer_field_missing_everywhere_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl", [{"prompt": "a", "gold": "1"}, {"prompt": "b", "gold": "2"}])
    with pytest.raises(InputError) as e:
        load_file(path, "prompt", "answer")
    msg = str(e.value)
    assert f"{path}:1" in msg and "'answer'" in msg and "--answer-field" in msg


def test_generic_file_some_golds_missing_or_bad(tmp_path):
    rows = [{"prompt": "a", "gold": "1"}, {"prompt": "b"}, {"prompt": "c", "gold": None},
            {"prompt": "d", "gold": "seven"}]
    ps = load_file(write_jsonl(tmp_path / "m.jsonl", rows), "prompt", "gold", gold_format="aime")
    assert golds(ps) == ["1", None, None, None]
    assert "m.jsonl:2" in ps[1].gold_error and "missing" in ps[1].gold_error
    assert "m.jsonl:3" in ps[2].gold_error
    assert "m.jsonl:4" in ps[3].gold_error and "seven" in ps[3].gold_error
    assert all(p.benchmark == "m" for p in ps)


def test_generic_file_nested_fields_blank_lines_and_bad_json(tmp_path):
    path = tmp_path / "n.jsonl"
    path.write_text(json.dumps({"q": "x", "meta": {"ans": 3.0}}) + "\n\n" + json.dumps({"q": "y", "meta": {"ans": 4}})
                    + "\n")
    ps = load_file(path, "q", "meta.ans", name="n")
    assert golds(ps) == ["3", "4"] and ps[1].meta["source"].endswith("n.jsonl:3")
    path.write_text(json.dumps({"q": "x", "a": 1}) + "\n{not json\n")
    with pytest.raises(InputError, match=r"n\.jsonl:2"):
        load_file(path, "q", "a")
    with pytest.raises(InputError, match="does not exist"):
        load_file(tmp_path / "absent.jsonl", "q", "a")


def test_generic_file_empty_question_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "e.jsonl", [{"q": "x", "a": 1}, {"q": "  ", "a": 2}])
    with pytest.raises(InputError, match=r"e\.jsonl:2.*'q'"):
        load_file(path, "q", "a")


def test_limit(tmp_path):
    write_jsonl(tmp_path / "gsm8k" / "test.jsonl", GSM_ROWS)
    full = load_benchmark("gsm8k", tmp_path)
    assert [p.id for p in load_benchmark("gsm8k", tmp_path, limit=2)] == [p.id for p in full[:2]]
    assert load_benchmark("gsm8k", tmp_path, limit=0) == []
    assert len(load_benchmark("gsm8k", tmp_path, limit=100)) == len(GSM_ROWS)
    with pytest.raises(InputError, match="limit"):
        load_benchmark("gsm8k", tmp_path, limit=-1)
    path = write_jsonl(tmp_path / "g.jsonl", GSM_ROWS)
    assert len(load_file(path, "question", "answer", gold_format="gsm8k", limit=3)) == 3


def test_problem_records_serialize(tmp_path):
    write_jsonl(tmp_path / "gsm8k" / "test.jsonl", GSM_ROWS[:1])
    d = load_benchmark("gsm8k", tmp_path)[0].to_dict()
    assert json.loads(json.dumps(d))["gold"] == "72"


# --------------------------------------------------------------------------- the Hub path (faked)

def test_hub_path_calls_load_dataset_with_the_spec(monkeypatch):
    calls = []

    def fake_load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        return [{"problem": "Find x.", "answer": "025", "id": 1, "solution": "..."},
                {"problem": "Find y.", "answer": "7", "id": 2, "solution": "..."}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=fake_load_dataset))
    ps = load_benchmark("aime24", limit=1)
    assert calls == [("HuggingFaceH4/aime_2024", None, "train")]
    assert [(p.id, p.gold) for p in ps] == [("aime24-1", "25")]

    calls.clear()
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(
        load_dataset=lambda path, name=None, split=None: calls.append((path, name, split)) or [
            {"question": "Q", "answer": "A\n#### 1,234"}]))
    ps = load_benchmark("gsm8k")
    assert calls == [("openai/gsm8k", "main", "test")] and ps[0].gold == "1234"


def test_hub_failure_suggests_data_dir(monkeypatch):
    def offline(*a, **k):
        raise ConnectionError("offline mode is enabled")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=offline))
    with pytest.raises(InputError) as e:
        load_benchmark("math500")
    msg = str(e.value)
    assert "HuggingFaceH4/MATH-500" in msg and "--data-dir" in msg and "offline" in msg


def test_every_spec_is_consistent():
    for name, spec in BENCHMARKS.items():
        assert spec.name == name
        assert spec.local_path == f"{name}/test.jsonl"
        assert callable(spec.gold_parser)
        q, a, _ = spec.fields(hub=True)
        assert q and a and spec.hub_id and spec.hub_split


# --------------------------------------------------------------------------- the real shared data

EXPECTED_COUNTS = {"gsm8k": 1319, "math500": 500, "aime24": 30, "aime25": 30, "amc23": 40}


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} is absent")
def test_shared_data_loads_with_all_golds():
    assert set(EXPECTED_COUNTS) == set(BENCHMARKS)
    unparseable = {}
    for name, count in EXPECTED_COUNTS.items():
        ps = load_benchmark(name, SHARED_DATA)
        assert len(ps) == count == BENCHMARKS[name].size, name
        assert len({p.id for p in ps}) == count, f"{name}: duplicate ids"
        bad = [(p.id, p.gold_error) for p in ps if p.gold is None]
        if bad:
            unparseable[name] = bad
        # every gold of the integer-answer sets reads as a plain integer
        if name in ("gsm8k", "aime24", "aime25", "amc23"):
            assert all(canonical_number(p.gold) == p.gold and "." not in p.gold for p in ps), name
    assert not unparseable, f"golds that could not be read: {unparseable}"
    aime24 = {p.id: p.gold for p in load_benchmark("aime24", SHARED_DATA)}
    assert aime24["aime24-60"] == "204" and "25" in aime24.values() and "025" not in aime24.values()
    math500 = load_benchmark("math500", SHARED_DATA)
    assert math500[0].gold == r"\left( 3, \frac{\pi}{2} \right)"
    assert {p.meta["level"] for p in math500} == {1, 2, 3, 4, 5}
    gsm = load_benchmark("gsm8k", SHARED_DATA)
    assert sum(p.gold.startswith("-") for p in gsm) == 2
    assert all("," not in p.gold for p in gsm)
