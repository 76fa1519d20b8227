"""The README's quickstart runs as written on a machine with no model hub."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reasoning.jsonl import read_jsonl

README = Path(__file__).resolve().parents[1] / "README.md"


def marked_block(name: str) -> str:
    text = README.read_text()
    m = re.search(rf"<!-- {name}.*?-->\s*```bash\n(.*?)```\s*<!-- /{name} -->", text, re.S)
    assert m, f"README lost its marked {name} block"
    return m.group(1)


def quickstart_block() -> str:
    return marked_block("quickstart")


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


def test_the_arith_commands_run_as_written(tmp_path):
    """Every pipeline on the embedded task and its teacher, as the README shows them."""
    import json

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", marked_block("arith")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "runs" / "arith-teacher" / "results.json").read_text())
    assert results["points"] and all(p["accuracy"] == 1.0 for p in results["points"])
    [decoded] = read_jsonl(tmp_path / "runs" / "arith-tw.jsonl")
    assert decoded["blocks"] == 1 and decoded["critical_path_tokens"] < decoded["total_tokens"]
    for folder in ("arith-mathfusion", "arith-fusion", "arith-traces"):
        assert (tmp_path / "runs" / folder / "README.md").exists(), folder
    assert json.loads((tmp_path / "runs" / "arith-fusion" / "stats.json").read_text())["accuracy"]["fusion"] == 1.0


def test_the_files_the_tested_blocks_write_are_ignored_by_git(tmp_path):
    """Running the quickstart or the arith block in a checkout leaves `git status` clean.

    The project's .gitignore is checked in a scratch repository, so the test runs in any copy of
    the project (a tarball too), not only in a git checkout."""
    import shutil

    if shutil.which("git") is None:
        pytest.skip("git is not installed: `git check-ignore` is the judge of .gitignore")
    scratch = tmp_path / "repo"
    scratch.mkdir()
    subprocess.run(["git", "init", "-q", str(scratch)], check=True)
    shutil.copy(README.parent / ".gitignore", scratch / ".gitignore")
    written = set()
    for name in ("quickstart", "arith"):
        block = marked_block(name)
        written |= set(re.findall(r">\s*(\S+\.jsonl)", block))
        written |= set(re.findall(r"model tiny (\S+)", block))
        written |= {path.split("/")[0] + "/" for path in re.findall(r"--out (\S+)", block)}
    assert written >= {"prompts.jsonl", "tiny-model", "runs/"}
    for path in sorted(written):
        probe = path if path.endswith(("/", ".jsonl")) else path + "/"
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", probe], cwd=scratch)
        assert ignored.returncode == 0, f"{probe} (written by a README block) is not in .gitignore"
