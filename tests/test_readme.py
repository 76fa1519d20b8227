"""The README's quickstart runs as written on a machine with no model hub."""
from __future__ import annotations

import os
import re
import shlex
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
    assert decoded["blocks"] == 1 and decoded["critical_path_tokens"] < decoded["response_tokens"]
    for folder in ("arith-mathfusion", "arith-fusion", "arith-traces"):
        assert (tmp_path / "runs" / folder / "README.md").exists(), folder
    assert json.loads((tmp_path / "runs" / "arith-fusion" / "stats.json").read_text())["accuracy"]["fusion"] == 1.0


def server_block_commands() -> tuple[list[str], list[str]]:
    """The server block's `parafuse serve` and `parafuse reason generate` commands, each as its argv."""
    block = marked_block("server").replace("\\\n", " ")
    commands = [[t for t in shlex.split(line, comments=True) if t != "&"] for line in block.splitlines()]
    serve = [c for c in commands if c[:2] == ["parafuse", "serve"]]
    generate = [c for c in commands if c[:3] == ["parafuse", "reason", "generate"]]
    assert len(serve) == 1 and len(generate) == 1, block
    return serve[0], generate[0]


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_the_readme_server_block_is_parafuse_serve_with_this_machines_settings(tmp_path, tiny_model):
    """The block's client talks to the server the block starts, and `parafuse serve --print-command`, run as
    written (no VLLM_CPU_KVCACHE_SPACE in the environment), carries what the CPU build needs."""
    from reasoning.serve import vllm_is_cpu_build

    serve, generate = server_block_commands()
    port = flag(serve, "--port")
    assert flag(generate, "--base-url") == f"http://127.0.0.1:{port}/v1"
    assert f"http://127.0.0.1:{port}/v1/models" in marked_block("server")  # it waits for that server
    assert flag(generate, "--model") == flag(serve, "--served-model-name")
    assert flag(generate, "--tokenizer") == serve[2]
    (tmp_path / serve[2]).symlink_to(tiny_model)
    env = {k: v for k, v in os.environ.items() if k != "VLLM_CPU_KVCACHE_SPACE"}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    proc = subprocess.run([*serve, "--print-command"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tokens = shlex.split(proc.stdout.splitlines()[-1])
    assigned = dict(t.split("=", 1) for t in tokens if re.fullmatch(r"[A-Z_]+=.*", t))
    argv = tokens[len(assigned):]
    assert argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert flag(argv, "--model") == serve[2] and flag(argv, "--port") == port
    assert flag(argv, "--served-model-name") == flag(serve, "--served-model-name")
    if vllm_is_cpu_build():
        assert int(assigned["VLLM_CPU_KVCACHE_SPACE"]) >= 1
        assert "--no-enable-chunked-prefill" in argv
    else:
        assert "VLLM_CPU_KVCACHE_SPACE" not in assigned and "--no-enable-chunked-prefill" not in argv


@pytest.mark.slow
def test_the_readme_client_gets_seeded_answers_from_parafuse_serve(vllm_server, tiny_model, tmp_path):
    """The session's vLLM server is a real `parafuse serve` (started by reasoning/testing/servers.py with the
    README's served name); the block's client command, pointed at it, gets seeded answers and the server
    survives them (seeded chunked prefills used to kill vllm-cpu's engine)."""
    assert vllm_server.extra["command"][1:4] == ["-m", "parafuse.cli", "serve"]
    serve, generate = server_block_commands()
    assert vllm_server.model == flag(serve, "--served-model-name")
    (tmp_path / serve[2]).symlink_to(tiny_model)
    (tmp_path / "prompts.jsonl").write_text('{"id": "q1", "prompt": "What is 2 + 3?"}\n')
    argv = [vllm_server.url if a == flag(generate, "--base-url") else a for a in generate]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run([*argv, "--seed", "7", "--max-tokens", "8", "--no-progress"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [row] = read_jsonl(tmp_path / flag(generate, "--out"))
    assert row["status"] == "ok" and len(row["result"]["completions"]) == int(flag(generate, "-n"))
    assert vllm_server.proc.poll() is None, vllm_server.log_tail()


def files_the_tested_blocks_write() -> set[str]:
    """The files and folders the quickstart and arith blocks write, relative to where they run."""
    written = set()
    for name in ("quickstart", "arith"):
        block = marked_block(name)
        written |= set(re.findall(r">\s*(\S+\.jsonl)", block))
        written |= set(re.findall(r"model tiny (\S+)", block))
        written |= {path.split("/")[0] + "/" for path in re.findall(r"--out (\S+)", block)}
    return written


def test_the_tested_blocks_write_the_files_the_ignore_check_covers():
    """The block parsing the .gitignore check relies on finds every file the blocks write (a reworded
    block that hid one from the regexes would make the check below pass vacuously). Needs no git."""
    assert files_the_tested_blocks_write() >= {"prompts.jsonl", "tiny-model", "runs/"}


def test_the_files_the_tested_blocks_write_are_ignored_by_git(tmp_path):
    """Running the quickstart or the arith block in a checkout leaves `git status` clean.

    The project's .gitignore is checked in a scratch repository, so the test runs in any copy of
    the project (a tarball too), not only in a git checkout. Only a machine without git skips it:
    git's own matcher is the judge of .gitignore (a re-implementation of its pattern rules here
    could agree with itself and still differ from git); CI and every checkout have git."""
    import shutil

    if shutil.which("git") is None:
        pytest.skip("git is not installed: `git check-ignore` is the judge of .gitignore")
    scratch = tmp_path / "repo"
    scratch.mkdir()
    subprocess.run(["git", "init", "-q", str(scratch)], check=True)
    shutil.copy(README.parent / ".gitignore", scratch / ".gitignore")
    for path in sorted(files_the_tested_blocks_write()):
        probe = path if path.endswith(("/", ".jsonl")) else path + "/"
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", probe], cwd=scratch)
        assert ignored.returncode == 0, f"{probe} (written by a README block) is not in .gitignore"
