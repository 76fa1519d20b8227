"""The output folder of a synthesis run: a datasets-loadable dataset, side files, a dataset card.

    DIR/data/train.jsonl, DIR/data/train.parquet   the kept rows (the same rows in two formats)
    DIR/README.md                                  dataset card: YAML header (so `load_dataset(DIR)` and
                                                   the Hub find the data) + counts, rates, tokens, config
    DIR/removed.jsonl, DIR/failures.jsonl, ...     what was filtered out and what failed, with reasons
    DIR/store.jsonl                                the generation store (what makes a rerun resume)

Files are written to a temporary name and renamed, so a kill while writing leaves either the
old file or the new one, never half of one.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reasoning.jsonl import write_jsonl_atomic
from reasoning.types import InputError


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


@functools.lru_cache(maxsize=1)
def generator_name() -> str:
    """`parafuse X.Y.Z`, the installed distribution that wrote a dataset (provenance of every row)."""
    from importlib import metadata

    try:
        return f"parafuse {metadata.version('parafuse')}"
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "parafuse (not installed)"


def write_dataset(out_dir: Path, rows: Sequence[dict[str, Any]], features, split: str = "train") -> dict[str, str]:
    """`data/<split>.jsonl` and `data/<split>.parquet` through `datasets`, with a fixed schema.

    The schema is explicit so a column that happens to be all-null in one run (say, the
    conditional check in a run without conditional fusion) has the same type in every run, and
    an empty result still writes a parquet file with the right columns (`datasets` itself
    refuses to load a split with no rows; pyarrow reads it).
    """
    import datasets

    if rows:
        # Every row gets every column (None where it has none): from_list takes its columns
        # from the first row, and rows of different kinds (fused, original) differ.
        ds = datasets.Dataset.from_list([{k: r.get(k) for k in features} for r in rows], features=features)
    else:
        ds = datasets.Dataset.from_dict({k: [] for k in features}, features=features)
    data = out_dir / "data"
    _atomic(data / f"{split}.parquet", lambda tmp: ds.to_parquet(str(tmp)))
    write_jsonl_atomic(data / f"{split}.jsonl", ({k: r.get(k) for k in features} for r in rows))
    return {"jsonl": str(data / f"{split}.jsonl"), "parquet": str(data / f"{split}.parquet")}


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.3f}"
        return "" if v is None else str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_card(out_dir: Path, title: str, body: str, tags: Sequence[str], config: dict[str, Any],
               split: str = "train") -> Path:
    """README.md with the YAML header the Hub and `datasets.load_dataset(out_dir)` read."""
    import yaml

    header = {
        "configs": [{"config_name": "default", "data_files": [{"split": split, "path": f"data/{split}.parquet"}]}],
        "tags": list(tags),
    }
    text = (f"---\n{yaml.safe_dump(header, sort_keys=False)}---\n\n# {title}\n\n{body.strip()}\n\n"
            f"## Config\n\n```yaml\n{yaml.safe_dump(config, sort_keys=False, allow_unicode=True)}```\n")
    path = out_dir / "README.md"
    _atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def push_to_hub(out_dir: Path, repo_id: str, private: bool = False, token_env: str = "HF_TOKEN") -> str:
    """Upload the card and the data files (not the store or the side files) to a Hub dataset repo."""
    from huggingface_hub import HfApi

    token = os.environ.get(token_env) or None
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(out_dir), repo_id=repo_id, repo_type="dataset",
                                 allow_patterns=["README.md", "data/*"],
                                 commit_message="Upload dataset written by parafuse")
    except Exception as e:  # auth, network, name taken: the data is safe on disk either way
        raise InputError(f"could not push {out_dir} to the Hub dataset {repo_id!r}: {type(e).__name__}: {e}. "
                         f"The dataset is complete on disk; log in (`hf auth login`) or set ${token_env}, "
                         "then rerun with --push-to-hub (nothing is regenerated)") from None
    return str(getattr(info, "commit_url", repo_id))
