"""The one settings layer: config dataclasses -> command-line flags, YAML recipes and plain dicts.

Every command (`reason generate`, `reason decode`, `synth ...`, `eval run`, later `train ...`)
declares its settings as dataclasses whose fields carry help text (`setting(...)`), and this
module does the rest:

- `add_config_args(parser, Config)` adds one flag per field (`--max-tokens` for `max_tokens`),
  with the help text and the default shown, `--x/--no-x` for booleans, `A,B` for tuples and
  `none` for optional values. A nested dataclass field (`fuse: Sampling = nested(...)`) gives
  prefixed flags (`--fuse-temperature`); its `aliases` keep older flat spellings working
  (`--temperature` for `--fuse-temperature`).
- `config_from_args(Config, args)` builds the config: field defaults <- the YAML recipe named by
  `--config` <- the flags given on the command line (the command line wins).
- YAML recipes nest the same way (`fuse: {temperature: 0.7}`), take the flat aliases too, and
  may name any other flag of the command (`model:`, `out:`); an unknown key, a value of the
  wrong type, or YAML that does not parse is an `InputError` naming the file, the key or the line.
- `to_dict` / `from_dict` round-trip a config through plain JSON-ready dicts (tuples become
  lists); `from_dict` accepts the aliases, so a `config.json` written before a field moved into a
  nested block still loads.

Flags default to None on the parser, so that a flag that was given can be told from one that
was not; the dataclass holds the real defaults, in one place.

Why not `transformers.HfArgumentParser` / `trl.TrlParser`: they take flat dataclasses only (a
nested sampling block per stage is what this layer exists for), importing them costs seconds on
every `--help`, and their errors do not name the recipe's line. `rl/` still hands TRL its own
`SFTConfig`/`GRPOConfig`, built from a recipe parsed here.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

from reasoning.types import InputError

NESTED = "nested"


def setting(default: Any, help: str, *, csv: bool = True, repeat: bool = False,
            choices: tuple[str, ...] | None = None, flag: str | None = None, **kwargs: Any) -> Any:
    """A config field with help text.

    `csv=False`: a tuple field whose items may contain commas (a YAML string is then one item).
    `repeat`: a tuple field given as a repeated flag, one item each (`--stop A --stop B`).
    `choices`: the values a string field may take (checked on the command line and in YAML).
    `flag`: the field's flag when it is not `--field-name` (e.g. `-n`).
    """
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple default")
    metadata = {"help": help, "csv": csv and not repeat, "repeat": repeat, "choices": choices, "flag": flag}
    return field(default=default, metadata=metadata, **kwargs)


def nested(factory: Callable[[], Any], help: str, *, prefix: str | None = None,
           aliases: Mapping[str, str] | None = None) -> Any:
    """A field holding another config dataclass (a stage's `Sampling` block, say).

    `prefix`: what its flags start with (default the field name: `--fuse-temperature`; "" for
    none). `aliases`: older flat names of its fields, {old name: field of the block}; they work
    as flags (`--temperature`), as YAML keys and in `from_dict`.
    """
    return field(default_factory=factory,
                 metadata={"help": help, NESTED: True, "prefix": prefix, "aliases": dict(aliases or {})})


# ---------------------------------------------------------------------------- field types

def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap(tp) -> tuple[Any, bool]:
    """(the plain type of a field annotation, whether it admits None)."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = typing.get_args(tp)
        return next(a for a in args if a is not type(None)), type(None) in args
    return tp, False


def _kind(tp) -> tuple[type, type | None, bool]:
    """(container or scalar type, item type of a tuple, optional)."""
    base, optional = _unwrap(tp)
    origin = typing.get_origin(base)
    if origin is tuple:
        items = [a for a in typing.get_args(base) if a is not Ellipsis]
        return tuple, (items[0] if items else str), optional
    return base, None, optional


def _is_nested(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get(NESTED))


def _csv(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _scalar(kind: type, value: Any, optional: bool) -> Any:
    """`value` as `kind`, or raise ValueError; accepts the strings a command line gives."""
    if value is None or (optional and isinstance(value, str) and value.lower() == "none"):
        if optional:
            return None
        raise ValueError("a value is required")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ValueError
    if kind is int:
        if isinstance(value, bool) or isinstance(value, float):
            raise ValueError
        return int(value)
    if kind is float:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    if kind is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ValueError
    return value


def coerce(cls, f: dataclasses.Field, value: Any, where: str) -> Any:
    """A YAML, JSON or command-line value for field `f` of `cls`, checked; `where` names it in errors."""
    kind, item, optional = _kind(_hints(cls)[f.name])
    try:
        if kind is tuple:
            if value is None and optional:
                return None
            if isinstance(value, str):
                value = _csv(value) if f.metadata.get("csv", True) else [value]
            if not isinstance(value, (list, tuple)):
                raise ValueError
            out = tuple(_scalar(item, v, False) for v in value)
        else:
            out = _scalar(kind, value, optional)
    except (ValueError, TypeError):
        shown = f"list of {item.__name__}" if kind is tuple else kind.__name__
        raise InputError(f"{where}: {f.name} must be {shown}{' or none' if optional else ''}, got {value!r}") from None
    choices = f.metadata.get("choices")
    if choices and out is not None and out not in choices:
        raise InputError(f"{where}: {f.name} must be one of {', '.join(choices)}, got {out!r}")
    return out


# ---------------------------------------------------------------------------- walking a config class

@dataclasses.dataclass(frozen=True)
class Leaf:
    """One settable field of a (possibly nested) config class."""

    path: tuple[str, ...]  # ("fuse", "temperature")
    owner: type  # the dataclass that declares the field
    field: dataclasses.Field
    flags: tuple[str, ...]  # "--fuse-temperature", then aliases ("--temperature")
    default: Any

    @property
    def dest(self) -> str:
        return ".".join(self.path)


def leaves(cls, skip: tuple[str, ...] = ()) -> Iterator[Leaf]:
    """Every leaf field of `cls`, nested blocks expanded, with its flags and its default."""
    defaults = cls()
    yield from _leaves(cls, defaults, (), "", {}, skip)


def _leaves(cls, instance, path, prefix, aliases, skip) -> Iterator[Leaf]:
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        value = getattr(instance, f.name)
        if _is_nested(f):
            sub_prefix = f.metadata.get("prefix")
            sub_prefix = f.name.replace("_", "-") + "-" if sub_prefix is None else sub_prefix
            sub_aliases = {v: k for k, v in f.metadata.get("aliases", {}).items()}
            yield from _leaves(type(value), value, path + (f.name,), prefix + sub_prefix, sub_aliases, ())
            continue
        own = f.metadata.get("flag") or "--" + prefix + f.name.replace("_", "-")
        flags = tuple(dict.fromkeys((own,) + tuple("--" + a.replace("_", "-") for a in _alias_names(aliases, f.name))))
        yield Leaf(path + (f.name,), cls, f, flags, value)


def _alias_names(aliases: Mapping[str, Any], name: str) -> list[str]:
    got = aliases.get(name)
    if got is None:
        return []
    return [got] if isinstance(got, str) else list(got)


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or "(none)"
    return "none" if value is None else str(value)


# ---------------------------------------------------------------------------- flags

def add_recipe_arg(parser: argparse.ArgumentParser, what: str = "any flag of this command, by its name") -> None:
    """The `--config YAML` flag every command has (read by `config_from_args`)."""
    parser.add_argument("--config", default=None, metavar="YAML",
                        help=f"recipe file of settings ({what}); flags given on the command line win")


def add_config_args(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = (), group: str | None = None,
                    title_nested: bool = True) -> None:
    """One flag per leaf field of `cls` (nested blocks prefixed), with help and default shown.

    Parser defaults stay None (see the module docstring); `config_from_args` fills the rest.
    """
    top = parser.add_argument_group(group) if group else parser
    groups: dict[str, Any] = {}
    for leaf in leaves(cls, skip):
        target = top
        if len(leaf.path) > 1 and title_nested:
            block = leaf.path[0]
            if block not in groups:
                f = next(x for x in dataclasses.fields(cls) if x.name == block)
                groups[block] = parser.add_argument_group(f"{block}: {f.metadata['help']}")
            target = groups[block]
        help_ = leaf.field.metadata["help"]
        if "(default" not in help_:
            help_ += f" (default {_shown(leaf.default)})"
        add_leaf_arg(target, leaf, help_)


def add_leaf_arg(target, leaf: Leaf, help: str) -> None:
    """The flag(s) of one leaf field on a parser or argument group, parsed and checked as the field says."""
    kind = _kind(_hints(leaf.owner)[leaf.field.name])[0]
    if kind is bool:
        target.add_argument(*leaf.flags, dest=leaf.dest, action=argparse.BooleanOptionalAction, default=None,
                            help=help)
    elif kind is tuple and leaf.field.metadata.get("repeat"):
        target.add_argument(*leaf.flags, dest=leaf.dest, action="append", default=None, metavar="STR",
                            help=help + "; repeat the flag for several")
    else:
        if kind is tuple:
            metavar = "A,B"
        elif leaf.field.metadata.get("choices"):
            metavar = "{" + ",".join(leaf.field.metadata["choices"]) + "}"
        else:
            metavar = leaf.field.name.upper()
        target.add_argument(*leaf.flags, dest=leaf.dest, type=_flag_parser(leaf), default=None, metavar=metavar,
                            help=help)


def _flag_parser(leaf: Leaf) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return coerce(leaf.owner, leaf.field, text, leaf.flags[0])
        except InputError as e:
            raise argparse.ArgumentTypeError(str(e).split(": ", 1)[-1]) from None
    kind = _kind(_hints(leaf.owner)[leaf.field.name])[0]
    parse.__name__ = kind.__name__
    return parse


def given_flags(args: argparse.Namespace, cls, skip: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """{field path: value} of the flags of `cls` that were given on the command line."""
    out = {}
    for leaf in leaves(cls, skip):
        value = getattr(args, leaf.dest, None)
        if value is not None:
            out[leaf.path] = value
    return out


# ---------------------------------------------------------------------------- dicts and YAML

def to_dict(cfg) -> dict[str, Any]:
    """A config as a JSON-ready dict: nested blocks as dicts, tuples as lists."""
    def plain(v):
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v
    return plain(cfg)


def flatten(values: Mapping[str, Any], cls, where: str, extra_keys: tuple[str, ...] = ()
            ) -> tuple[dict[tuple[str, ...], Any], dict[str, Any]]:
    """Split a (YAML or JSON) mapping into ({field path: checked value}, {extra key: value}).

    Keys may be field names (with `-` or `_`), nested blocks as mappings, or a block's flat
    aliases; `extra_keys` are other keys the caller accepts (a command's other flags). Anything
    else is an InputError naming `where`, the key and the valid keys.
    """
    found: dict[tuple[str, ...], Any] = {}
    extra: dict[str, Any] = {}
    _flatten(values, cls, (), where, found, extra, extra_keys)
    return found, extra


def _flatten(values, cls, path, where, found, extra, extra_keys) -> None:
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for f in list(fields.values()):  # a field also answers to its own flag's name (`strategy:` for strategies)
        flag = (f.metadata.get("flag") or "").lstrip("-").replace("-", "_")
        if flag and len(flag) > 1 and flag not in fields:
            fields[flag] = f
    aliases: dict[str, tuple[str, str]] = {}  # old flat name -> (block, field)
    for f in fields.values():
        if _is_nested(f):
            # A block's fields also answer to their flag names (`fusor_max_tokens`) and its declared aliases.
            prefix = f.metadata.get("prefix")
            prefix = f.name + "_" if prefix is None else prefix.replace("-", "_")
            if prefix:
                for sub in dataclasses.fields(_block_type(cls, f.name)):
                    aliases[prefix + sub.name] = (f.name, sub.name)
            for old, new in f.metadata.get("aliases", {}).items():
                aliases[old] = (f.name, new)
    for key, value in values.items():
        name = str(key).replace("-", "_")
        here = f"{where}: key {'.'.join(path + (str(key),))!r}"
        if name in fields and _is_nested(fields[name]):
            if not isinstance(value, Mapping):
                raise InputError(f"{here} is a block of settings: give a mapping, e.g. {key}: {{temperature: 0.7}}")
            sub = _block_type(cls, name)
            _flatten(value, sub, path + (name,), where, found, extra, ())
        elif name in fields:
            found[path + (fields[name].name,)] = coerce(cls, fields[name], value, here)
        elif name in aliases:
            block, sub_name = aliases[name]
            sub = _block_type(cls, block)
            sub_field = next(f for f in dataclasses.fields(sub) if f.name == sub_name)
            found[path + (block, sub_name)] = coerce(sub, sub_field, value, here)
        elif not path and name in extra_keys:
            extra[name] = value
        else:
            raise InputError(_unknown_key(cls, name, str(key), path, where, fields, aliases,
                                          extra_keys if not path else ()))


def _unknown_key(cls, name: str, key: str, path: tuple[str, ...], where: str, fields: Mapping[str, Any],
                 aliases: Mapping[str, Any], extra_keys: tuple[str, ...]) -> str:
    """The error for an unknown key: each setting listed once, by its own name (a block's flat
    aliases and a field's flag name are accepted but not listed again), and the closest accepted
    spelling when there is one."""
    import difflib

    own = [f.name for f in dataclasses.fields(cls) if f.init]
    valid = sorted(dict.fromkeys(own + [k for k in extra_keys if k not in own]))
    accepted = list(dict.fromkeys(valid + list(fields) + list(aliases)))
    close = difflib.get_close_matches(name, accepted, n=1, cutoff=0.7)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (f"{where}: unknown key {'.'.join(path + (key,))!r}{hint} Valid keys"
            f"{' of this block' if path else ''}: {', '.join(valid)}")


def _block_type(cls, name: str) -> type:
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return type(f.default_factory())


def build(cls, values: Mapping[tuple[str, ...], Any]):
    """`cls` with the given {field path: value} set over its defaults (a nested block keeps the
    defaults its own factory gives, e.g. a decoder's 0.6 temperature, where no value is given)."""
    return _apply(cls(), values, ())


def _apply(instance, values: Mapping[tuple[str, ...], Any], path: tuple[str, ...]):
    changes = {}
    for f in dataclasses.fields(instance):
        here = path + (f.name,)
        if _is_nested(f) and any(p[: len(here)] == here for p in values):
            changes[f.name] = _apply(getattr(instance, f.name), values, here)
        elif here in values:
            changes[f.name] = values[here]
    return dataclasses.replace(instance, **changes) if changes else instance


def from_dict(cls, data: Mapping[str, Any], where: str = "settings"):
    """Build `cls` from a plain dict (the inverse of `to_dict`; flat aliases accepted)."""
    found, _ = flatten(data, cls, where)
    return build(cls, found)


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` laid over `base`, nested mappings merged key by key (a recipe's variant over the recipe)."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_recipe(path: str | Path, variant: str | None = None) -> tuple[dict[str, Any], str]:
    """A YAML recipe with its variant (from its `variants:` block) merged in, without its `description`,
    and a name for error messages (the file, and the variant)."""
    data = read_yaml(path)
    variants = data.pop("variants", {}) or {}
    data.pop("description", None)
    if variant:
        if variant not in variants:
            raise InputError(f"{path}: no variant {variant!r}; it has: {', '.join(variants) or 'none'}")
        data = merge(data, variants[variant])
    return data, f"{path}" + (f" (variant {variant})" if variant else "")


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML recipe as a mapping; a missing file or bad YAML names the file (and the line)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"{path}:{mark.line + 1}" if mark else str(path)
        raise InputError(f"{at}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of setting: value, got {type(data).__name__}")
    return data


def config_from_args(cls, args: argparse.Namespace, parser: argparse.ArgumentParser | None = None,
                     skip: tuple[str, ...] = ()):
    """Build `cls` from its defaults <- the YAML recipe in `args.config` <- flags given on the command line.

    `skip` names the fields whose flags the command wrote by hand (`--teacher` for `teachers`):
    their value is read from `args` under the field's name. A recipe key naming another flag of
    the command (`model`, `out`, engine flags) is set on `args` when the command line left that
    flag at its default.

    Every command builds its settings here before it loads an engine, so this is also where the
    run's output settings reach the libraries (`reasoning.quiet`: `--no-progress` turns their
    progress bars off too).
    """
    from reasoning import quiet

    quiet.for_run(progress=not getattr(args, "no_progress", False))
    values: dict[tuple[str, ...], Any] = {}
    recipe = getattr(args, "config", None)
    if recipe:
        own = {leaf.dest for leaf in leaves(cls)}
        others = tuple(a.dest for a in parser._actions if a.dest not in own and a.dest not in ("help", "config")) \
            if parser is not None else ()
        found, extra = flatten(read_yaml(recipe), cls, str(recipe), extra_keys=others)
        values.update(found)
        dests = {a.dest for a in parser._actions} if parser is not None else set()
        for name in skip:  # a skipped field is also a flag of the command (--model, --teacher): set it there
            if (name,) in found and name in dests:
                extra[name] = found[(name,)]
        for name, value in extra.items():
            if getattr(args, name, None) == parser.get_default(name):
                setattr(args, name, value)
    values.update(given_flags(args, cls, skip))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in skip:
        given = getattr(args, name, None)
        if given is not None:
            values[(name,)] = coerce(cls, fields[name], given, "--" + name.replace("_", "-"))
    return build(cls, values)


__all__ = ["Leaf", "add_config_args", "add_leaf_arg", "add_recipe_arg", "build", "coerce", "config_from_args",
           "flatten", "from_dict", "given_flags", "leaves", "nested", "read_yaml", "setting", "to_dict"]
