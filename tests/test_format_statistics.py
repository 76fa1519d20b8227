"""Format statistics of decoded strategies: computed from the decodes, carried in results.json, shown in the report."""
from __future__ import annotations

import json

from reasoning.decoders.base import DecodeResult, Segment
from test_report import _md_tables, make_run_dir


def decode(paths: list[str], valid: bool = True) -> DecodeResult:
    requests = [{"role": "path", "block": 0, "index": i} for i in range(len(paths))] + [{"role": "summary",
                                                                                       "block": 0}]
    segments = [Segment(text, "generated", i) for i, text in enumerate(paths)] + [Segment("sum", "generated",
                                                                                           len(paths))]
    return DecodeResult(text="".join(paths), format="parallel_r1", requests=requests, blocks=1 if paths else 0,
                        validation_errors=[] if valid else ["bad"], segments=segments)


def test_shares_of_valid_forked_and_identical_branch_decodes():
    from eval.decoded import format_statistics

    outs = [decode(["a = 1", "a = 1 "]), decode(["a = 1", "b = 2"]), decode([], valid=False),
            decode(["x", "y", "x"], valid=False)]
    stats = format_statistics(outs)
    assert {k: stats[k] for k in ("decodes", "valid_format", "parallel_response_rate", "identical_branches")} == {
        "decodes": 4, "valid_format": 0.5, "parallel_response_rate": 0.75, "identical_branches": 2 / 3}


def test_the_report_shows_the_format_table_with_its_caveats(tmp_path):
    from eval.report import write_report

    run = make_run_dir(tmp_path / "run", label="tiny@arith", model="org/tiny", seed=1, skill=0.0,
                       tokens_per_sample=100.0)
    data = json.loads((run / "results.json").read_text())
    data["format"] = {"parallel_r1": {"decodes": 40, "valid_format": 0.95, "forked": 0.9,
                                      "identical_branches": 1.0}}
    (run / "results.json").write_text(json.dumps(data))
    md_path, _ = write_report([run], tmp_path / "report")
    md = md_path.read_text()
    table = next(t for t in _md_tables(md) if t[0][:3] == ["run", "strategy", "decodes"])
    # an old run's "forked" share is read as its new name, parallel_response_rate
    assert table[1][:6] == ["tiny@arith", "parallel_r1", "40", "95.0", "90.0", "100.0"]
    assert "exchangeable" in md and "copy" in md
