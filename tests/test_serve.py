"""`parafuse serve`: the vLLM server command for this machine (no server is started here; the session's
real one is started through `parafuse serve` by reasoning/testing/servers.py, see test_readme.py)."""
from __future__ import annotations

import sys

import pytest

from parafuse.cli import build_parser, main
from reasoning import serve
from reasoning.serve import server_command

SERVER = [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]


def test_on_a_gpu_build_the_command_is_vllms_own():
    cmd = server_command("M", port=9000, served_name="m", max_model_len=4096, extra_args=["--enforce-eager"],
                         cpu=False)
    assert cmd.argv == [*SERVER, "--model", "M", "--host", "127.0.0.1", "--port", "9000", "--served-model-name", "m",
                        "--max-model-len", "4096", "--enforce-eager"]
    assert cmd.env == {} and not cmd.cpu


def test_on_the_cpu_build_it_sizes_the_kv_cache_and_turns_chunked_prefill_off(monkeypatch):
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    cmd = server_command("M", cpu=True)
    assert cmd.argv[-1] == "--no-enable-chunked-prefill"
    assert cmd.env["VLLM_CPU_KVCACHE_SPACE"] == str(serve.default_kv_cache_gib())
    # a quarter of the available memory in whole GiB, held between 1 and 64
    for available_gib, expected in ((24, 6), (2, 1), (1000, 64), (9.9, 2)):
        monkeypatch.setattr(serve, "_available_memory_bytes", lambda gib=available_gib: int(gib * 2 ** 30))
        assert serve.default_kv_cache_gib() == expected, available_gib
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "3")  # the user's value wins over the default ...
    assert server_command("M", cpu=True).env["VLLM_CPU_KVCACHE_SPACE"] == "3"
    assert server_command("M", cpu=True, kv_cache_gib=2).env["VLLM_CPU_KVCACHE_SPACE"] == "2"  # ... the flag over it
    # a choice of the user's own about chunked prefill is left as it is
    chosen = server_command("M", cpu=True, extra_args=["--enable-chunked-prefill"])
    assert "--no-enable-chunked-prefill" not in chosen.argv


def test_flags_after_double_dash_go_to_vllm_wherever_parafuses_own_flags_are():
    args = build_parser().parse_args(["serve", "M", "--port", "9", "--", "--dtype", "float32", "--port", "7"])
    assert (args.model, args.port, args.vllm_args) == ("M", 9, ["--dtype", "float32", "--port", "7"])
    args = build_parser().parse_args(["serve", "--max-model-len", "64", "M"])
    assert (args.model, args.max_model_len, args.vllm_args) == ("M", 64, [])


def test_print_command_prints_what_serve_execs(tmp_path, monkeypatch, capsys):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    monkeypatch.setattr(serve, "vllm_is_cpu_build", lambda: True)
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "2")
    assert main(["serve", str(model), "--port", "8123", "--print-command", "--", "--enforce-eager"]) == 0
    note, line = capsys.readouterr().out.splitlines()
    assert "KV cache 2 GiB" in note and "chunked prefill off" in note
    assert line.startswith("VLLM_CPU_KVCACHE_SPACE=2 ")
    assert line.endswith(" --enforce-eager --no-enable-chunked-prefill")
    execs = []
    monkeypatch.setattr(serve.os, "execve", lambda path, argv, env: execs.append((path, argv, env)))
    assert main(["serve", str(model), "--port", "8123", "--", "--enforce-eager"]) == 0
    [(path, argv, env)] = execs
    assert path == sys.executable and line.endswith(" ".join(argv[1:]))
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "2" and env["VLLM_CACHE_ROOT"]


@pytest.mark.parametrize("argv, message", [
    (["serve", "./no-such-model"], "does not exist"),
    (["serve", "M", "--port", "0"], "--port 0"),
    (["serve", "M", "--kv-cache-space", "0"], "--kv-cache-space"),
])
def test_bad_arguments_are_one_clear_error(argv, message, capsys):
    assert main([*argv, "--print-command"]) == 2
    assert message in capsys.readouterr().err
