"""`ParafuseGRPOTrainer`: TRL's `GRPOTrainer` with what parallel-thinking RL adds.

- Trace figures in every log (both TRL's own sampling and decoder rollouts): the share of
  completions with a parallel block (`trace/parallel_share`), their mean critical-path and total
  tokens (`trace/critical_tokens`, `trace/total_tokens`: `reasoning.formats.metrics` over the
  whole response with the tokenizer; a text that does not parse counts all of it on the critical
  path).
- Parallel-R1 Unseen in RL (Parallel-R1, arXiv 2509.07980, §3.3 Unseen): every log-prob the loss
  uses (policy, old policy, reference) is computed under the Unseen mask and positions of each
  row (`rl.structure.parallel_r1.unseen`), not causally. TRL 1.16 routes all three through
  `_get_per_token_logps_and_entropies`, which is the one method overridden.
- The on-policy gap: with `policy_gap`, each generation round is rescored by the trainer before
  any update and the largest |sampled - rescored| log-prob per rollout segment (main, path1,
  path2, summary, ...) is logged as `policy_gap/SEGMENT`. The decoders' paths are separate
  requests, so a causal (Seen) trainer scores path 2 as if it had seen path 1; the Unseen
  override makes the paths exact, and the summary then matches only when it was sampled under
  the same mask (`rollout.unseen_sampling`), up to re-tokenization (`rollout/retokenized`) and
  precision. Log-probs are compared at temperature 1 only (the hf engine reports the model's own
  distribution; TRL divides the logits by the temperature).
"""
from __future__ import annotations

import math
import sys
from collections import defaultdict
from typing import Any

import torch
from trl import GRPOTrainer

from reasoning.engines.special_tokens import TagKeeper
from rl.rewards import BLOCK_OPENER, ROLLOUT_TEXT
from rl.structure import additive_mask, tag_ids
from rl.structure.parallel_r1 import TAGS as PARALLEL_R1_TAGS
from rl.structure.parallel_r1 import unseen


class UnseenStructure:
    """Builds each row's Unseen mask and positions from its token ids (the tags are single tokens)."""

    def __init__(self, tokenizer, reference_positions: bool = False, second_path_is_last: bool = False):
        self.tags = tag_ids(tokenizer, PARALLEL_R1_TAGS)
        self.reference_positions = reference_positions
        self.second_path_is_last = second_path_is_last

    def example(self, prompt: list[int], completion: list[int]):
        return unseen(prompt, completion, self.tags, self.reference_positions, self.second_path_is_last)

    def batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_start: int, dtype
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, L, L) float mask and (B, L) positions of TRL's rows: a left-padded prompt, then the
        completion up to its padding (`attention_mask` 1 on both). Pad rows attend to themselves."""
        batch, length = input_ids.shape
        allowed = torch.zeros((batch, 1, length, length), dtype=torch.bool, device=input_ids.device)
        positions = torch.zeros((batch, length), dtype=torch.long, device=input_ids.device)
        diagonal = torch.arange(length, device=input_ids.device)
        allowed[:, 0, diagonal, diagonal] = True
        ids = input_ids.tolist()
        for row in range(batch):
            valid = attention_mask[row].nonzero().flatten().tolist()
            if not valid:
                continue
            start, end = valid[0], valid[-1] + 1
            example = self.example(ids[row][start:completion_start], ids[row][completion_start:end])
            allowed[row, 0, start:end, start:end] = example.mask().to(allowed.device)
            positions[row, start:end] = torch.tensor(example.position_ids, device=positions.device)
        return additive_mask(allowed, dtype).to(input_ids.device), positions


def trace_figures(texts: list[str], ids: list[list[int]], fmt: str, tokenizer,
                  extra: dict[str, Any]) -> dict[str, float]:
    """Share with a block, mean critical-path and total tokens of one round's completions."""
    from reasoning.formats.metrics import text_metrics
    from reasoning.formats.trace import FormatError

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    critical, total = extra.get("critical_path_len"), extra.get("total_len")
    if critical is None or total is None:
        critical, total = [], []
        for text, row in zip(texts, ids):
            try:
                m = text_metrics(text, fmt, count)
                critical.append(m.critical_path_tokens)
                total.append(m.total_tokens)
            except FormatError:
                critical.append(len(row))
                total.append(len(row))
    n = max(1, len(texts))
    return {"trace/parallel_share": sum(BLOCK_OPENER[fmt] in t for t in texts) / n,
            "trace/critical_tokens": sum(critical) / n, "trace/total_tokens": sum(total) / n}


class ParafuseGRPOTrainer(GRPOTrainer):
    """See the module docstring. `trace_format`: the format whose figures are logged (None: none);
    `unseen`: an `UnseenStructure` (None: causal log-probs); `policy_gap`: log the on-policy gap, per
    segment as the rollout (`rollout_func.last`) names each token's."""

    def __init__(self, *args, trace_format: str | None = None, unseen: UnseenStructure | None = None,
                 policy_gap: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.trace_format = trace_format
        self.unseen = unseen
        self.policy_gap = policy_gap
        if unseen is not None and getattr(self, "aux_loss_enabled", False):
            raise ValueError("the Unseen structure does not compute a mixture-of-experts router loss; train this "
                             "model with rollout.structure causal, or turn its router aux loss off")
        self._keeper = TagKeeper(self.processing_class)
        self._gap_warned = False

    # ---- trace figures ------------------------------------------------------------------------
    def _generate(self, prompts: list):
        out = super()._generate(prompts)
        if self.trace_format is not None:
            completion_ids, extra = out[1], out[5]
            texts = extra.get(ROLLOUT_TEXT) or [self._keeper.decode(list(ids)) for ids in completion_ids]
            for name, value in trace_figures(texts, completion_ids, self.trace_format, self.processing_class,
                                             extra).items():
                self._log_metric(name, value)
        return out

    # ---- Unseen log-probs -------------------------------------------------------------------------
    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None,
                                           compute_entropy=False, compute_aux_loss=False, **multimodal):
        if self.unseen is None:
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **multimodal)
        if any(value is not None for value in multimodal.values()):
            raise ValueError("the Unseen structure is for text-only models")
        batch_size = batch_size or input_ids.size(0)
        dtype = next(model.parameters()).dtype
        completion_start = input_ids.size(1) - logits_to_keep
        logps, entropies = [], []
        for start in range(0, input_ids.size(0), batch_size):
            ids, mask = input_ids[start:start + batch_size], attention_mask[start:start + batch_size]
            mask4d, positions = self.unseen.batch(ids, mask, completion_start, dtype)
            # Labels from the 2-D mask, as TRL builds them: only completion tokens are scored.
            labels = ids.masked_fill(mask == 0, -100)
            labels[:, :completion_start] = -100
            with self.accelerator.autocast():
                out = model(input_ids=ids, attention_mask=mask4d, position_ids=positions, labels=labels,
                            fused_lm_head=True)
            logps.append(out.log_probs[:, -logits_to_keep:])
            if compute_entropy:
                entropies.append(out.entropy[:, -logits_to_keep:])
        return torch.cat(logps), (torch.cat(entropies) if compute_entropy else None), None

    # ---- the on-policy gap ---------------------------------------------------------------------
    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if self.policy_gap:
            self._log_policy_gap(output)
        return output

    def _log_policy_gap(self, output: dict[str, Any]) -> None:
        sampled = output.get("sampling_per_token_logps")
        rows = getattr(self.rollout_func, "last", None)
        if sampled is None or not rows:
            return
        if not math.isclose(self.temperature, 1.0):
            if not self._gap_warned:
                print("policy_gap: measured at temperature 1 only (the engine's log-probs are the model's own); "
                      "skipped", file=sys.stderr)
                self._gap_warned = True
            return
        ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
        mask = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
        keep = output["completion_ids"].size(1)
        with torch.no_grad():
            rescored, _, _ = self._get_per_token_logps_and_entropies(
                self.model, ids, mask, keep, batch_size=self.args.per_device_train_batch_size)
        gaps: dict[str, float] = defaultdict(float)
        difference = (rescored - sampled).abs().tolist()
        for row, stitched in enumerate(rows):
            for t, role in enumerate(stitched.roles[:keep]):
                if role == "inserted" or not stitched.mask[t]:
                    continue
                value = difference[row][t]
                if not math.isnan(value):
                    gaps[role] = max(gaps[role], value)
        # Into this round's metrics directly: TRL has already flushed what rewards logged for it.
        metrics = self._metrics["train" if self.model.training else "eval"]
        for role, value in gaps.items():
            metrics[f"policy_gap/{role}"].append(value)


__all__ = ["ParafuseGRPOTrainer", "UnseenStructure", "trace_figures"]
