"""Prompts: every prompt parafuse sends is a Jinja2 template (`prompts/templates/**.jinja`).

One loader renders them all, in a sandboxed environment with StrictUndefined, so a missing
variable is an error that names the template and the variable instead of an empty string in
a prompt. A user template directory (`--prompts-dir` or $PARAFUSE_PROMPTS_DIR) overrides a
built-in template of the same name. A template's name is its path under the directory
without `.jinja`, e.g. `math/boxed`.
"""
from prompts.library import PromptError, PromptLibrary, default_library, render

__all__ = ["PromptError", "PromptLibrary", "default_library", "render"]
