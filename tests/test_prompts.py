"""Prompt templates: strict rendering, user overrides, the CLI."""
from __future__ import annotations

import pytest

from parafuse.cli import main
from prompts import PromptError, PromptLibrary


def test_builtin_template_renders_its_variables():
    text = PromptLibrary().render("math/boxed", question="What is 2 + 2?")
    assert "What is 2 + 2?" in text and "\\boxed{}" in text


def test_missing_variable_names_template_and_variable():
    with pytest.raises(PromptError, match=r"'math/boxed' needs variable 'question'"):
        PromptLibrary().render("math/boxed", problem="x")


def test_unknown_template_lists_the_known_ones():
    with pytest.raises(PromptError, match="no prompt template named 'nope'.*math/boxed"):
        PromptLibrary().render("nope")


def test_user_directory_overrides_a_builtin_by_name(tmp_path):
    (tmp_path / "math").mkdir()
    (tmp_path / "math" / "boxed.jinja").write_text("Q: {{ question }} (mine)")
    (tmp_path / "extra.jinja").write_text("{{ a }}-{{ b }}")
    lib = PromptLibrary(tmp_path)
    assert lib.render("math/boxed", question="1+1") == "Q: 1+1 (mine)"
    assert lib.render("extra", a=1, b=2) == "1-2"
    assert "extra" in lib.names() and "generic/user" in lib.names()
    assert lib.version("math/boxed") != PromptLibrary().version("math/boxed")


def test_templates_are_sandboxed(tmp_path):
    (tmp_path / "evil.jinja").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(Exception, match="unsafe|access"):
        PromptLibrary(tmp_path).render("evil")


def test_syntax_error_names_the_template(tmp_path):
    (tmp_path / "broken.jinja").write_text("{% if x %}no end")
    with pytest.raises(PromptError, match="broken"):
        PromptLibrary(tmp_path).render("broken", x=1)


def test_cli_list_and_show(tmp_path, capsys):
    (tmp_path / "mine.jinja").write_text("hello {{ name }}")
    assert main(["prompts", "--prompts-dir", str(tmp_path), "list"]) == 0
    out = capsys.readouterr().out
    assert "mine" in out and "user" in out and "vars: name" in out and "math/boxed" in out
    assert main(["prompts", "show", "math/boxed"]) == 0
    assert "{{ question }}" in capsys.readouterr().out
    assert main(["prompts", "show", "nope"]) == 2
    assert "no prompt template named 'nope'" in capsys.readouterr().err


def test_method_prompts_carry_what_each_method_was_trained_on():
    from reasoning.methods import method_prompts

    lib = PromptLibrary()
    assert method_prompts() == {"parallel_r1": "methods/parallel_r1", "threadweaver": "methods/threadweaver",
                                "parathinker": "methods/parathinker"}
    assert {"methods/parallel_r1", "methods/threadweaver", "methods/parathinker"} <= set(lib.names())
    r1 = lib.render("methods/parallel_r1", question="What is 2 + 2?")
    # Parallel-R1: the tags in order, >= 2 independent paths, a summary after each block, Final Answer:, problem last
    at = [r1.index(t) for t in ("<Parallel>", "<Path>", "</Path>", "</Parallel>", "<Summary>", "</Summary>")]
    assert at == sorted(at) and "at least two" in r1 and "independent" in r1
    last = r1.splitlines()
    assert last[-1] == "Problem: What is 2 + 2?" and last[-3].startswith("End your response with a line that starts "
                                                                        "with Final Answer:")
    pt = lib.render("methods/parathinker", question="What is 2 + 2?")
    # ParaThinker: the question first, then the literal <summary> tag (its training finds the paths after it)
    assert pt.startswith("What is 2 + 2? ") and "<summary> </summary>" in pt and "\\boxed{}" in pt
    tw = lib.render("methods/threadweaver", question="What is 2 + 2?")
    assert tw.startswith("What is 2 + 2? ") and "step by step" in tw and tw.endswith("\\boxed{}.")
    for name in method_prompts().values():
        assert lib.variables(name) == {"question"}


def test_reason_decode_defaults_to_the_method_prompt_for_question_lines(tmp_path):
    import json

    from reasoning.decode_cli import method_template

    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": "What is 2 + 2?"}) + "\n")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "What is 2 + 2?"}) + "\n")
    assert method_template("parallel_r1", None, str(questions)) == "methods/parallel_r1"
    assert method_template("parathinker", None, str(prompts)) is None, "a line's own prompt is sent as written"
    assert method_template("threadweaver", "method", str(prompts)) == "methods/threadweaver"
    assert method_template("threadweaver", "math/boxed", str(questions)) == "math/boxed"
