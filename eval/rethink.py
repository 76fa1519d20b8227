"""The rethink strategy: TTSPM's sequential scaling paradigm (Wang et al., "Scaling over Scaling:
Exploring Test-Time Scaling Pareto in Large Reasoning Models", arXiv 2505.20522), in which the model
rereads its own answer after a cue and answers again, round after round; its accuracy at r rounds is
the sequential curve `eval.run.saturation_fits` fits.

`check_rethink` checks its settings before any engine starts; `RethinkStrategy` is the `EvalRun`
mixin that runs the rounds on the run's pool, engine, store and grader.
"""
from __future__ import annotations

import dataclasses
import statistics
from typing import TYPE_CHECKING

from eval.records import Sample, Scored, outcome_rates
from eval.strategies import PoolSample, answer_at_rounds
from reasoning.inputs import derive_seed
from reasoning.types import InputError, Request

if TYPE_CHECKING:
    from eval.config import EvalConfig
    from prompts import PromptLibrary


def check_rethink_rounds(rounds: int, name: str) -> None:
    """Refuse one round: round 1 is the pool's own sample, so it would report plain accuracy as rethink's."""
    if rounds == 1:
        raise InputError(f"{name} 1 does no rethinking (round 1 is the pool's own sample); ask for 2 or more "
                         "rounds, or drop rethink from the strategies")


def check_rethink(cfg: EvalConfig, library: PromptLibrary) -> None:
    """The rethink strategy's settings: rounds >= 2, chains within the pool, a cue template that renders alone."""
    cfg.rethink_budgets()
    check_rethink_rounds(cfg.rethink_rounds, "--rethink-rounds")
    if not 1 <= cfg.rethink_samples <= cfg.n:
        raise InputError(f"--rethink-samples must lie between 1 and n={cfg.n} (chain j continues pool sample j), "
                         f"got {cfg.rethink_samples}")
    library.render(cfg.rethink_template)  # the cue takes no variables: a missing or broken one fails now


class RethinkStrategy:
    """`EvalRun._rethink`: it reads the run's cfg, library, engine, grader and progress, and calls its
    `_messages`, `_key_extra`, `_generate` and `_record`."""

    def _rethink(self, problems, pool, store, records: list[Sample]) -> dict[int, Scored]:
        """TTSPM's sequential paradigm (Wang et al., arXiv 2505.20522): rethinking rounds.

        Chain j of a problem starts from pool sample j (round 1, so r=1 is plain accuracy on those
        samples). Round r+1 is one raw-text request: the rendered prompt, then every earlier round's
        text each followed by the cue (`rethink_template`, on its own paragraph), sampled as the pool
        is. Each round is graded on its own text; the chain's answer at r is the latest one found
        (`answer_at_rounds`). Tokens at r: the completion tokens of rounds 1..r (the re-read prompt
        of each round is prefill, not counted; it is in the store's prompt_tokens); they are all on
        the critical path, since each round waits for the last; wall time is the rounds' sum.
        """
        cfg, chains = self.cfg, self.cfg.rethink_samples
        cue = "\n\n" + self.library.render(cfg.rethink_template) + "\n\n"
        key = f"{self._key_extra()}+{cfg.rethink_template}@{self.library.version(cfg.rethink_template)}"
        base = cfg.pool.base_seed(cfg.seed)
        jobs = [(p, j) for p in problems for j in range(chains)]
        rounds = {(p.id, j): [pool[p.id][j]] for p, j in jobs}
        prompts = {p.id: self.engine.render_chat(self._messages(p)) for p in problems}
        for r in range(2, cfg.rethink_rounds + 1):
            reqs = [Request(prompt=prompts[p.id] + "".join(x.text + cue for x in rounds[(p.id, j)]),
                            id=f"{p.id}/rethink/{j}/r{r}", key_extra=key,
                            params=cfg.pool.params(n=1, seed=derive_seed(base, f"{p.id}/rethink/{j}/{r}")))
                    for p, j in jobs]
            results = self._generate(self.engine, reqs, store, f"rethink r={r}")
            completions = [res.completions[0] for res in results]
            grades = self.grader.grade_many([(p.gold, c.text) for (p, _), c in zip(jobs, completions)],
                                            progress=self.progress)
            for (p, j), q, res, c, g in zip(jobs, reqs, results, completions, grades):
                rounds[(p.id, j)].append(PoolSample(c.text, g.answer, g.extractor, g.correct, g.reason, c.tokens,
                                                    res.latency_s, q.params.seed, c.finish_reason))
        self.rethink_rounds.update({key: [x.text for x in chain] for key, chain in rounds.items()})
        scored = {}
        for r in cfg.rethink_budgets():
            s = scored[r] = Scored(axis="rounds", estimator=f"mean of {chains} rethinking chains per problem "
                                                            f"(chain j continues pool sample j)")
            for p in problems:
                stands, tokens, wall = [], [], []
                for j in range(chains):
                    chain = rounds[(p.id, j)][:r]
                    answer = answer_at_rounds(chain)[-1]
                    spent, took = sum(x.tokens for x in chain), sum(x.latency_s for x in chain)
                    # the record holds the whole chain's text, the answer it stands on and the last round's end
                    shown = dataclasses.replace(answer, text=cue.join(x.text for x in chain),
                                                finish_reason=chain[-1].finish_reason)
                    records.append(self._record(p, "rethink", r, shown, spent, spent, took, j))
                    stands.append(shown)
                    tokens.append(spent)
                    wall.append(took)
                s.add(statistics.mean(x.correct for x in stands), statistics.mean(tokens), statistics.mean(tokens),
                      statistics.mean(wall), *outcome_rates(stands))
        return scored

