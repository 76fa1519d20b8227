"""rl: training. It owns SFT and GRPO recipes on TRL and PEFT: structured attention masks and
position ids for parallel paths, trie packing, the papers' rewards, and YAML recipes parsed
into config dataclasses. It uses `reasoning` for rollouts and `eval` for rewards."""
