"""The README's quickstart runs as written on a machine with no model hub."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from reasoning.jsonl import read_jsonl

README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart_block() -> str:
    text = README.read_text()
    m = re.search(r"<!-- quickstart.*?-->\s*```bash\n(.*?)```\s*<!-- /quickstart -->", text, re.S)
    assert m, "README lost its marked quickstart block"
    return m.group(1)


def test_quickstart_runs_and_the_rerun_resumes(tmp_path):
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", quickstart_block()], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 ok (2 already in the store)" in proc.stderr
    rows = read_jsonl(tmp_path / "runs" / "out.jsonl")
    assert [r["id"] for r in rows] == ["q1", "q2"]
    assert all(len(r["result"]["completions"]) == 4 for r in rows)
