"""reasoning: inference. It owns the engines (`hf`, `vllm`, `openai`) behind one contract, the
resumable generation store every pipeline writes through, the parallel-thinking formats and
their decoders, and Fusion-of-N aggregation. It depends only on `prompts`."""
