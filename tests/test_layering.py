"""Dependencies point one way: prompts <- reasoning <- {eval, synthesis} <- rl, the `parafuse` CLI on top.

Every import in every module (at the top or inside a function) is read with `ast`; an import of
a package that sits above the importing one fails the test, and so does importing another
module's private (underscore) name.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What each package may import (besides itself). synthesis and rl call eval for grading and filters.
ALLOWED = {
    "prompts": set(),
    "reasoning": {"prompts"},
    "eval": {"prompts", "reasoning"},
    "synthesis": {"prompts", "reasoning", "eval"},
    "rl": {"prompts", "reasoning", "eval"},
    "parafuse": {"prompts", "reasoning", "eval", "synthesis", "rl"},
}


def imports(path: Path):
    """(line, imported module, imported names) for every absolute import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module, tuple(a.name for a in node.names)


def package_files():
    for package in ALLOWED:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield package, path


def test_the_package_tree_is_what_this_test_knows():
    assert all((ROOT / p / "__init__.py").exists() for p in ALLOWED)
    assert sum(1 for _ in package_files()) > 50


def test_no_package_imports_one_above_it():
    bad = []
    for package, path in package_files():
        for line, module, _ in imports(path):
            top = module.split(".")[0]
            if top in ALLOWED and top != package and top not in ALLOWED[package]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_private_name_is_imported_from_another_module():
    bad = []
    for _, path in package_files():
        for line, module, names in imports(path):
            if module.split(".")[0] not in ALLOWED:
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {', '.join(private)} from {module}")
    assert not bad, "private names used across modules:\n" + "\n".join(bad)
