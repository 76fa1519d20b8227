"""The one template loader (see the package docstring)."""
from __future__ import annotations

import hashlib
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

BUILTIN_DIR = Path(__file__).parent / "templates"
SUFFIX = ".jinja"


class PromptError(ValueError):
    """A template is missing, broken, or rendered without a variable it needs."""


class PromptLibrary:
    """Templates from an optional user directory, falling back to the built-in ones."""

    def __init__(self, user_dir: str | os.PathLike | None = None):
        user_dir = user_dir or os.environ.get("PARAFUSE_PROMPTS_DIR") or None
        self.dirs = [Path(user_dir)] if user_dir else []
        if user_dir and not self.dirs[0].is_dir():
            raise PromptError(f"prompts directory {user_dir} does not exist")
        self.dirs.append(BUILTIN_DIR)
        self._texts: dict[str, tuple[tuple, str, str]] = {}
        self.env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader([str(d) for d in self.dirs]),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False,
            autoescape=False,
        )

    def names(self) -> list[str]:
        seen = set()
        for d in self.dirs:
            for f in d.rglob(f"*{SUFFIX}"):
                seen.add(f.relative_to(d).as_posix()[: -len(SUFFIX)])
        return sorted(seen)

    def path(self, name: str) -> Path:
        for d in self.dirs:
            f = d / f"{name}{SUFFIX}"
            if f.is_file():
                return f
        raise PromptError(f"no prompt template named {name!r}; `parafuse prompts list` shows them: "
                          + ", ".join(self.names()))

    def _read(self, name: str) -> tuple[str, str]:
        """(text, version) of a template, re-read only when its file changed.

        Pipelines ask for the version with every request they build; hashing the file each
        time would cost more than the rest of building the request.
        """
        path = self.path(name)
        st = path.stat()
        stamp = (str(path), st.st_mtime_ns, st.st_size)
        hit = self._texts.get(name)
        if hit is None or hit[0] != stamp:
            text = path.read_text(encoding="utf-8")
            hit = self._texts[name] = (stamp, text, hashlib.sha256(text.encode()).hexdigest()[:12])
        return hit[1], hit[2]

    def source(self, name: str) -> str:
        return self._read(name)[0]

    def version(self, name: str) -> str:
        """Short hash of the template text: part of every generation-store key that uses it."""
        return self._read(name)[1]

    def variables(self, name: str) -> set[str]:
        from jinja2 import meta

        return meta.find_undeclared_variables(self.env.parse(self.source(name)))

    def render(self, name: str, **variables: Any) -> str:
        self.path(name)  # a clear error for an unknown name
        try:
            template = self.env.get_template(f"{name}{SUFFIX}")
        except jinja2.TemplateSyntaxError as e:
            raise PromptError(f"template {name!r} ({e.filename}:{e.lineno}): {e.message}") from None
        try:
            return template.render(**variables).strip("\n")
        except jinja2.UndefinedError as e:
            m = re.search(r"'([^']+)' is undefined", str(e))
            var = m.group(1) if m else str(e)
            raise PromptError(
                f"template {name!r} needs variable {var!r}, which was not given "
                f"(given: {', '.join(sorted(variables)) or 'none'})"
            ) from None


@lru_cache(maxsize=8)
def default_library(user_dir: str | None = None) -> PromptLibrary:
    return PromptLibrary(user_dir)


def render(name: str, **variables: Any) -> str:
    return default_library(os.environ.get("PARAFUSE_PROMPTS_DIR")).render(name, **variables)
