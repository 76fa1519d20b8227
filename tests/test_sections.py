"""Section parsing of fusion replies, and the MathFusion prompts that ask for those sections."""
from __future__ import annotations

import re
import string

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from prompts import render
from synthesis.sections import STRATEGY_SECTIONS, SectionError, Sections, parse_sections

SEQ = STRATEGY_SECTIONS["sequential"]
COND = STRATEGY_SECTIONS["conditional"]
PROBLEM = "A baker sells 24 muffins in the morning and twice as many in the afternoon. How many muffins does she sell?"

WELL_FORMED = f"""### Elements Identified
Problem 1 outputs a count of muffins; Problem 2 needs a number of boxes.

### Plan
Use the muffin count as the number of items to pack.

### Combined Problem
{PROBLEM}
"""

# Header styles a model may use for a section name: (id, format of the whole header line).
HEADER_STYLES = [
    ("markdown-h3", "### {}"),
    ("markdown-h1", "# {}"),
    ("markdown-h6", "###### {}"),
    ("markdown-closed", "## {} ##"),
    ("bold", "**{}**"),
    ("underscore-bold", "__{}__"),
    ("hash-wrapped", "#{}#"),
    ("numbered-dot", "1. {}"),
    ("numbered-paren", "3) {}"),
    ("step-colon", "Step 3: {}"),
    ("step-dash", "Step 3 - {}"),
    ("trailing-colon", "{}:"),
    ("bold-colon-inside", "**{}:**"),
    ("bold-colon-outside", "**{}**:"),
    ("heading-bold", "### **{}**"),
    ("heading-numbered", "### 3. {}"),
    ("bold-numbered", "**Step 3: {}**"),
    ("bare", "{}"),
]
# Styles where the problem text may follow the header on the same line.
SAME_LINE_STYLES = [
    ("bold-colon-inside", "**{}:** "),
    ("bold-colon-outside", "**{}**: "),
    ("plain-colon", "{}: "),
    ("heading-colon", "### {}: "),
]


def _reply(style: str, names=SEQ, problem: str = PROBLEM) -> str:
    """A reply with every section under a header in `style`."""
    return "\n\n".join(f"{style.format(name)}\nsome text for {name.lower()}" for name in names[:-1]) + (
        f"\n\n{style.format(names[-1])}\n{problem}\n"
    )


def _reason(reply: str, names=SEQ, **kwargs) -> str:
    with pytest.raises(SectionError) as info:
        parse_sections(reply, names, **kwargs)
    return info.value.reason


# -- accepted header styles ---------------------------------------------------------------------


@pytest.mark.parametrize("style", [s for _, s in HEADER_STYLES], ids=[i for i, _ in HEADER_STYLES])
def test_each_header_style_finds_every_section(style):
    parsed = parse_sections(_reply(style), SEQ)
    assert parsed.problem == PROBLEM
    assert parsed.sections["Plan"] == "some text for plan"
    assert parsed.sections["Elements Identified"] == "some text for elements identified"


@pytest.mark.parametrize("name", ["COMBINED PROBLEM", "combined   problem", "Combined\tProblem"])
def test_section_names_match_case_and_whitespace_insensitively(name):
    assert parse_sections(f"### {name}\n{PROBLEM}", SEQ).problem == PROBLEM


@pytest.mark.parametrize("style", [s for _, s in SAME_LINE_STYLES], ids=[i for i, _ in SAME_LINE_STYLES])
def test_header_and_problem_on_the_same_line(style):
    reply = f"**Plan**\nchain them\n\n{style.format('Combined Problem')}{PROBLEM}\nIt rains on Sunday."
    parsed = parse_sections(reply, SEQ)
    assert parsed.problem == f"{PROBLEM}\nIt rains on Sunday."
    assert parsed.sections["Plan"] == "chain them"


def test_sentences_that_mention_a_section_name_are_not_headers():
    # "Plan" inside prose, a name glued to more words, and a bold name glued to a word.
    reply = "We Plan to merge.\n**Plan**ning ahead\nCombined Problems are fun\nCombined Problem set 2"
    assert _reason(reply) == "missing_section"


# -- which text is the problem ------------------------------------------------------------------


def test_well_formed_reply_fills_every_section():
    parsed = parse_sections(WELL_FORMED, SEQ)
    assert isinstance(parsed, Sections)
    assert parsed.sections == {
        "Elements Identified": "Problem 1 outputs a count of muffins; Problem 2 needs a number of boxes.",
        "Plan": "Use the muffin count as the number of items to pack.",
        "Combined Problem": PROBLEM,
    }
    assert parsed.problem == PROBLEM


def test_last_problem_header_wins_when_the_model_restates_its_plan():
    reply = (
        "### Plan\nfirst plan\n### Combined Problem\nA draft that I will revise later on.\n"
        f"### Plan\nrevised plan\n### Combined Problem\n{PROBLEM}"
    )
    parsed = parse_sections(reply, SEQ)
    assert parsed.problem == PROBLEM
    assert parsed.sections["Plan"] == "revised plan"


def test_problem_runs_to_the_end_past_other_section_names():
    # Conditional fusion: the new question legitimately reappears inside the problem.
    reply = f"### Analysis\nboth ask for money\n### New Problem\n{PROBLEM}\nNew Question: which costs less?"
    parsed = parse_sections(reply, COND)
    assert parsed.problem == f"{PROBLEM}\nNew Question: which costs less?"
    assert "New Question" not in parsed.sections


def test_missing_optional_sections_still_parse():
    parsed = parse_sections(f"Here is my fusion.\n\n### Combined Problem\n{PROBLEM}", SEQ)
    assert parsed.problem == PROBLEM
    assert parsed.sections == {"Combined Problem": PROBLEM}


@pytest.mark.parametrize(
    "block",
    ["Solution:\n24 + 48 = 72", "Answer: 72", "**Solution**\nShe sells 72.", "### Solution\n72",
     "### Solution to the combined problem\n72", "Note: the numbers were changed.", "Explanation: chained.",
     "**Final Answer:** 72"],
)
def test_solution_answer_or_note_block_is_cut_off(block):
    parsed = parse_sections(f"### Combined Problem\n{PROBLEM}\n\n{block}", SEQ)
    assert parsed.problem == PROBLEM
    assert block.splitlines()[0] in parsed.sections["Combined Problem"]  # the raw text keeps it


def test_problem_lines_that_merely_start_with_answer_words_are_kept():
    problem = "Solution A is 30% acid and solution B is 50% acid.\nAnswer the question: how much of each is mixed?"
    assert parse_sections(f"### Combined Problem\n{problem}", SEQ).problem == problem


@pytest.mark.parametrize(
    "wrapped",
    [
        f"```\n{PROBLEM}\n```",
        f"```text\n{PROBLEM}\n```",
        f'"{PROBLEM}"',
        f"\u201c{PROBLEM}\u201d",
        f"---\n{PROBLEM}\n---\nI linked the muffin count to the boxes.",
        f"{PROBLEM}\n***\nextra commentary",
        f"Problem: {PROBLEM}",
        f"New Problem: {PROBLEM}",
        f"**Problem:** {PROBLEM}",
        f'```\n"{PROBLEM}"\n```\n\nAnswer: 72',
    ],
)
def test_wrappers_around_the_problem_are_stripped(wrapped):
    assert parse_sections(f"### Combined Problem\n{wrapped}", SEQ).problem == PROBLEM


def test_a_problem_word_without_colon_is_not_a_label():
    problem = "Problem solving clubs meet 3 times a week for 12 weeks. How many meetings?"
    assert parse_sections(f"### Combined Problem\n{problem}", SEQ).problem == problem


# -- rejected replies ---------------------------------------------------------------------------


def test_random_junk_is_a_missing_section():
    assert _reason("the of 3 ###### ** zz") == "missing_section"
    assert _reason("") == "missing_section"


def test_missing_problem_section_says_what_was_expected():
    reply = "### Elements Identified\ncows\n### Plan\nI would chain the problems."
    with pytest.raises(SectionError) as info:
        parse_sections(reply, SEQ)
    assert info.value.reason == "missing_section"
    assert "'### Combined Problem'" in str(info.value)
    assert "Elements Identified, Plan, Combined Problem" in str(info.value)


def test_empty_problem_section():
    assert _reason("### Elements Identified\ncows\n### Plan\nchain\n### Combined Problem\n\n```\n```\n") == (
        "empty_problem"
    )


def test_problem_section_holding_only_a_solution():
    reply = "### Plan\nchain\n### Combined Problem\n**Solution:** First 24 * 2 = 48, then 24 + 48 = 72.\n"
    assert _reason(reply) == "contains_solution"


def test_too_short_problem():
    assert _reason("### Combined Problem\nFind x.") == "too_short"
    assert parse_sections("### Combined Problem\nFind x.", SEQ, min_problem_chars=5).problem == "Find x."


def test_truncated_reply_is_rejected_even_when_it_parses():
    assert _reason(WELL_FORMED, finish_reason="length") == "truncated"
    assert _reason("### Plan\nI will first", finish_reason="length") == "truncated"
    assert parse_sections(WELL_FORMED, SEQ, finish_reason="stop").problem == PROBLEM


def test_copied_input_is_rejected():
    other = "Tom packs muffins into boxes of 6. How many boxes does he fill?"
    # The same problem with different case and spacing.
    copied = PROBLEM.upper().replace(" ", "  ")
    assert _reason(f"### Combined Problem\n{copied}", inputs=[other, PROBLEM]) == "copied_input"
    # An input with only a few words added around it.
    assert _reason(f"### Combined Problem\nSo: {PROBLEM}", inputs=[PROBLEM]) == "copied_input"
    with pytest.raises(SectionError, match="input 2"):
        parse_sections(f"### Combined Problem\n{PROBLEM}", SEQ, inputs=[other, PROBLEM])


def test_a_real_fusion_containing_an_input_is_not_a_copy():
    fused = f"{PROBLEM} She packs them into boxes of 6 muffins each and sells each box for $5. How much does she earn?"
    assert parse_sections(f"### Combined Problem\n{fused}", SEQ, inputs=[PROBLEM]).problem == fused


def test_unknown_reason_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown SectionError reason"):
        SectionError("bad_reason")


# -- round trip ---------------------------------------------------------------------------------

_ALL_NAMES = {" ".join(n.split()).casefold() for names in STRATEGY_SECTIONS.values() for n in names}
_line = st.text(alphabet=string.ascii_letters + string.digits + " ", max_size=60)
_text = st.lists(_line, min_size=1, max_size=5).map("\n".join)


def _header_like(text: str) -> bool:
    return any(" ".join(line.split()).casefold() in _ALL_NAMES for line in text.splitlines())


def _vary_name(name: str, case: int) -> str:
    return [name, name.upper(), name.lower(), name.replace(" ", "  ")][case]


@settings(max_examples=300, deadline=None)
@given(
    strategy=st.sampled_from(sorted(STRATEGY_SECTIONS)),
    styles=st.lists(st.sampled_from([s for _, s in HEADER_STYLES]), min_size=3, max_size=3),
    same_line=st.one_of(st.none(), st.sampled_from([s for _, s in SAME_LINE_STYLES])),
    case=st.integers(0, 3),
    bodies=st.lists(_text, min_size=2, max_size=2),
    problem=_text,
)
def test_any_accepted_reply_round_trips_its_problem(strategy, styles, same_line, case, bodies, problem):
    assume(len(problem.strip()) >= 20 and not _header_like(problem))
    assume(not any(_header_like(b) for b in bodies))
    names = STRATEGY_SECTIONS[strategy]
    parts = [f"{style.format(_vary_name(name, case))}\n{body}" for style, name, body in zip(styles, names, bodies)]
    if same_line:
        parts.append(same_line.format(_vary_name(names[-1], case)) + problem)
    else:
        parts.append(f"{styles[2].format(_vary_name(names[-1], case))}\n{problem}")
    parsed = parse_sections("\n".join(parts), names)
    assert parsed.problem == problem.strip()
    for name, body in zip(names, bodies):
        assert parsed.sections[name] == body.strip()


# -- the prompts --------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", sorted(STRATEGY_SECTIONS))
def test_template_embeds_both_problems_and_names_its_sections_in_order(strategy):
    p1 = "Ann has 3 apples and buys 4 more. How many apples does she have?"
    p2 = "A train travels 60 km/h for 2 hours. How far does it go?"
    text = render(f"mathfusion/{strategy}", problem_1=p1, problem_2=p2)
    assert p1 in text and p2 in text
    headings = re.findall(r"^### (.+?)\s*$", text, flags=re.MULTILINE)
    assert headings == list(STRATEGY_SECTIONS[strategy])


@pytest.mark.parametrize("strategy", sorted(STRATEGY_SECTIONS))
def test_template_needs_both_problems(strategy):
    from prompts import PromptError

    with pytest.raises(PromptError, match="problem_2"):
        render(f"mathfusion/{strategy}", problem_1="x")
