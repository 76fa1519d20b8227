"""The tag tokens of the three parallel-thinking formats (Parallel-R1, arXiv 2509.07980; ThreadWeaver,
arXiv 2512.07843; ParaThinker, arXiv 2509.04475).

Each tag should be a single token in a model's tokenizer (the reference orchestrators stop on
their ids). The released checkpoints register them as special tokens; the engines keep them in
the text either way (`reasoning.engines.special_tokens`). Training is the exception: TRL decodes
completions with `skip_special_tokens=True`, which deletes special tags before rewards see them,
so models trained here register the tags as ordinary added tokens.
"""
from __future__ import annotations

# Parallel-R1: <Parallel><Path>..</Path>..</Parallel><Summary>..</Summary>
PARALLEL_R1 = ("<Parallel>", "</Parallel>", "<Path>", "</Path>", "<Summary>", "</Summary>")

# ThreadWeaver: outlines, threads and an optional conclusion inside a <Parallel> block.
THREADWEAVER = (
    "<Think>", "</Think>", "<Parallel>", "</Parallel>", "<Outlines>", "</Outlines>",
    "<Outline>", "</Outline>", "<Thread>", "</Thread>", "<Conclusion>", "</Conclusion>",
)

# ParaThinker: up to 8 numbered paths, a summary, and the pad its engine aligns paths with.
PARATHINKER = tuple(t for i in range(1, 9) for t in (f"<think{i}>", f"</think{i}>")) + (
    "<summary>", "</summary>", "<vllm_pad>",
)

# Native reasoning wrapper used by ThreadWeaver and ParaThinker trajectories.
THINK = ("<think>", "</think>")

ALL_TAGS: tuple[str, ...] = tuple(dict.fromkeys(PARALLEL_R1 + THREADWEAVER + PARATHINKER + THINK))
