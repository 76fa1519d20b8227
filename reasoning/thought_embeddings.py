"""ParaThinker's thought embeddings (ParaThinker, arXiv 2509.04475, §3.2): one learned vector per path,
added to the keys and values of every attention layer, so each path knows which one it is.

Each attention layer gets `seg_embeddings = nn.Embedding(max_segments, head_dim)`, zero-initialised
(the model is unchanged until it trains them). For a token of segment s, E[s] is added to its keys
(after Qwen3's per-head `k_norm`, before RoPE: added before the norm it would be renormalised
away) and to its values, broadcast over the KV heads; queries get nothing. Segment 0 is the
prompt and the summary, segment k the path opened by `<think_k>`. The parameter is named
`model.layers.{i}.self_attn.seg_embeddings.weight`, as in the authors' inference engine, so
tables move between the two.

Callers pass `seg_ids` (B, T) to the model's forward next to the ids; a pre-hook on the decoder
takes it (absent: every token is segment 0). The model's config records `parathinker_max_segments`,
and a merged checkpoint keeps the tables in `thought_embeddings/tables.safetensors` beside the
weights (outside the weight files, so transformers and vLLM load the rest as a plain model).
`load_causal_lm` adds the tables before loading and refuses a checkpoint whose tables would be
dropped: PEFT and transformers drop unknown tables without a word.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONFIG_KEY = "parathinker_max_segments"
TABLES_FILE = Path("thought_embeddings") / "tables.safetensors"
PARAMETER = "seg_embeddings"
MAX_SEGMENTS = 32


def decoder_of(model):
    """The decoder stack (`Qwen3Model`) under a causal LM or a PEFT wrapper."""
    inner = model
    for _ in range(4):
        if hasattr(inner, "layers") and hasattr(inner, "embed_tokens"):
            return inner
        inner = getattr(inner, "model", None) or getattr(inner, "base_model", None)
        if inner is None:
            break
    raise ValueError("thought embeddings need a decoder-only model with `model.layers` (Qwen2/Qwen3 style)")


def has_thought_embeddings(model) -> bool:
    """Whether the model (or a PEFT wrapper around it) has the tables."""
    return any(PARAMETER in name for name, _ in model.named_parameters())


def adapter_tables(folder: Path) -> int | None:
    """Rows of the thought-embedding tables a PEFT adapter folder holds (None: it holds none)."""
    from safetensors import safe_open

    weights = folder / "adapter_model.safetensors"
    if not weights.exists():
        return None
    with safe_open(str(weights), "pt") as handle:
        for key in handle.keys():
            if PARAMETER in key:
                return int(handle.get_slice(key).get_shape()[0])
    return None


def add_thought_embeddings(model, max_segments: int = MAX_SEGMENTS):
    """Add zero-initialised tables and their hooks to every attention layer (idempotent)."""
    import torch
    from torch import nn

    decoder = decoder_of(model)
    if getattr(decoder, "_parafuse_thought_hooks", False):
        return model
    state: dict[str, Any] = {"seg_ids": None}

    def take_seg_ids(module, args, kwargs):
        state["seg_ids"] = kwargs.pop("seg_ids", None)
        return args, kwargs

    def rows(attn, like: torch.Tensor) -> torch.Tensor:
        seg = state["seg_ids"]
        if seg is None:
            seg = torch.zeros(like.shape[:2], dtype=torch.long, device=like.device)
        return attn.seg_embeddings(seg.to(like.device)).to(like.dtype)  # (B, T, head_dim)

    for layer in decoder.layers:
        attn = layer.self_attn
        head_dim = attn.head_dim
        weight = attn.k_proj.weight
        attn.seg_embeddings = nn.Embedding(max_segments, head_dim, device=weight.device, dtype=weight.dtype)
        nn.init.zeros_(attn.seg_embeddings.weight)

        def add_to_heads(module, inputs, out, attn=attn, head_dim=head_dim):  # k/v_proj output: (B, T, kv*hd)
            shape = out.shape
            return (out.view(*shape[:2], -1, head_dim) + rows(attn, out)[:, :, None, :]).view(shape)

        def add_to_normed_keys(module, inputs, out, attn=attn):  # k_norm output: (B, T, kv_heads, head_dim)
            return out + rows(attn, out)[:, :, None, :]

        if hasattr(attn, "k_norm"):  # Qwen3: after the per-head norm (before it, the norm would undo the add)
            attn.k_norm.register_forward_hook(add_to_normed_keys)
        else:  # Qwen2-style: keys straight from the projection
            attn.k_proj.register_forward_hook(add_to_heads)
        attn.v_proj.register_forward_hook(add_to_heads)
    decoder.register_forward_pre_hook(take_seg_ids, with_kwargs=True)
    decoder._parafuse_thought_hooks = True
    config = getattr(model, "config", None)
    if config is not None:
        setattr(config, CONFIG_KEY, max_segments)
    return model


def table_state(model) -> dict[str, Any]:
    """The tables under their engine names (`model.layers.{i}.self_attn.seg_embeddings.weight`)."""
    decoder = decoder_of(model)
    return {f"model.layers.{i}.self_attn.{PARAMETER}.weight": layer.self_attn.seg_embeddings.weight.detach().cpu()
            .contiguous() for i, layer in enumerate(decoder.layers) if hasattr(layer.self_attn, PARAMETER)}


def save_tables(model, directory: str | Path) -> Path:
    from safetensors.torch import save_file

    path = Path(directory) / TABLES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(table_state(model), str(path))
    return path


def load_tables(model, directory: str | Path) -> None:
    """Copy saved tables into a model that already has them added; every layer's table must be there."""
    import torch
    from safetensors.torch import load_file

    path = Path(directory) / TABLES_FILE
    if not path.exists():
        raise ValueError(f"{directory}: the config says the model has thought embeddings ({CONFIG_KEY}) but "
                         f"{TABLES_FILE} is missing; copy it from the training output")
    saved = load_file(str(path))
    decoder = decoder_of(model)
    for i, layer in enumerate(decoder.layers):
        key = f"model.layers.{i}.self_attn.{PARAMETER}.weight"
        if key not in saved:
            raise ValueError(f"{path}: no table for layer {i} ({key})")
        with torch.no_grad():
            layer.self_attn.seg_embeddings.weight.copy_(saved[key])


def needs_tables(directory: str | Path) -> int | None:
    """`parathinker_max_segments` of a saved model or adapter folder, None when it has no tables."""
    directory = Path(directory)
    for name in ("config.json", "parafuse_training.json"):
        path = directory / name
        if path.exists():
            value = json.loads(path.read_text()).get(CONFIG_KEY)
            if value:
                return int(value)
    return None


def load_causal_lm(path: str, **kwargs: Any):
    """`AutoModelForCausalLM.from_pretrained`, made safe for thought embeddings and adapters.

    - A merged model with tables: load, add the tables, copy them from the side file.
    - A PEFT adapter folder: load its base (adding tables first when the adapter carries them),
      then the adapter, and check that every table came back.
    - Anything else: as transformers loads it.
    """
    from transformers import AutoModelForCausalLM

    folder = Path(path)
    if (folder / "adapter_config.json").exists():
        from peft import PeftModel

        base_name = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path")
        base = load_causal_lm(base_name, **kwargs)
        # the tables the adapter holds decide (a record that says so without them is refused below)
        segments = adapter_tables(folder) or needs_tables(folder)
        if segments and not has_thought_embeddings(base):
            add_thought_embeddings(base, segments)
        model = PeftModel.from_pretrained(base, str(folder))
        if segments:
            check_tables_loaded(model, folder)
        return model.merge_and_unload()
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    segments = getattr(model.config, CONFIG_KEY, None)
    if segments and folder.is_dir():
        add_thought_embeddings(model, int(segments))
        load_tables(model, folder)
    return model


def check_tables_loaded(model, folder: Path) -> None:
    """Refuse an adapter whose saved tables did not reach the model (PEFT would drop them silently)."""
    if not (folder / "adapter_model.safetensors").exists():
        return
    if adapter_tables(folder) is None:
        raise ValueError(f"{folder}: the adapter is marked as needing thought embeddings ({CONFIG_KEY}) but "
                         "holds no seg_embeddings tables; it was saved without them")
    if not has_thought_embeddings(model):
        raise ValueError(f"{folder}: the adapter's thought-embedding tables were not loaded; add them to the base "
                         "model first (reasoning.thought_embeddings.add_thought_embeddings)")
