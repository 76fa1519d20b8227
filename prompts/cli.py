"""`parafuse prompts list|show`."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prompts", help="list and show the prompt templates",
                       description="Every prompt is a Jinja2 template. Put files NAME.jinja in a directory and "
                                   "pass --prompts-dir (or set PARAFUSE_PROMPTS_DIR) to override built-ins by name.")
    p.add_argument("--prompts-dir", default=None, help="your template directory (overrides built-ins by name)")
    psub = p.add_subparsers(dest="prompts_cmd", required=True, metavar="COMMAND")
    ls = psub.add_parser("list", help="names of all templates, with where each comes from and its variables")
    ls.set_defaults(func=cmd_list)
    show = psub.add_parser("show", help="print one template's source")
    show.add_argument("name", help="template name, e.g. math/boxed")
    show.set_defaults(func=cmd_show)


def cmd_list(a: argparse.Namespace) -> int:
    from prompts.library import BUILTIN_DIR, PromptLibrary

    lib = PromptLibrary(a.prompts_dir)
    for name in lib.names():
        origin = "built-in" if lib.path(name).is_relative_to(BUILTIN_DIR) else "user"
        print(f"{name:32s} {origin:8s} {lib.version(name)}  vars: {', '.join(sorted(lib.variables(name)))}")
    return 0


def cmd_show(a: argparse.Namespace) -> int:
    from prompts.library import PromptLibrary

    lib = PromptLibrary(a.prompts_dir)
    print(f"# {a.name} ({lib.path(a.name)}, version {lib.version(a.name)})")
    print(lib.source(a.name), end="")
    return 0
