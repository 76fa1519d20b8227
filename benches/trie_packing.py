"""ThreadWeaver trie packing vs unrolled sequences: tokens processed and step time per trajectory.

The same ThreadWeaver-shaped trajectories (arith level 4: two or three independent people, one
thread each, after a shared prompt and outline) are trained two ways on the tiny model, with the
same loss (every trained token counted once):

  unrolled  every sequence the trajectory is trained as, one row each (the whole response, then
            each thread after its context), padded into one batch with plain causal attention;
  packed    those sequences in one trie (`rl.structure.threadweaver.pack`), one row per trajectory,
            with its ancestor mask and depth positions.

`token_ratio` = unrolled tokens / packed tokens (rows' real tokens); `ratio` = unrolled step time /
packed step time (forward + backward, median over paired repetitions, spread reported). The
packed rows carry an O(L^2) mask and shorter but denser rows, so the time ratio is smaller than
the token ratio; it is reported as measured.

    OMP_NUM_THREADS=1 .venv/bin/python benches/trie_packing.py
"""
from __future__ import annotations

import statistics
import tempfile
import time

from benchlib.common import emit, log, parser


def main() -> None:
    p = parser("Trie-packed vs unrolled ThreadWeaver SFT steps on the tiny model. Ends with one JSON line.")
    p.add_argument("--trajectories", type=int, default=8, help="trajectories per step")
    p.add_argument("--repetitions", type=int, default=7, help="paired (unrolled, packed) step timings")
    p.add_argument("--target", type=float, default=1.5, help="the token ratio packing should reach")
    args = p.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reasoning.engines.symbolic import ArithTeacher
    from reasoning.tasks.arith import generate
    from reasoning.tiny_model import build_tiny_model
    from rl.collators import encode_chat
    from rl.structure import causal, collate, tag_ids
    from rl.structure import threadweaver

    torch.set_num_threads(1)
    folder = build_tiny_model(tempfile.mkdtemp(prefix="parafuse-bench-") + "/tiny", preset="arith")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa")
    tags = tag_ids(tokenizer, threadweaver.TAGS)
    teacher = ArithTeacher()
    problems = [q for q in generate(4, 200, "train", 0) if q.independent][:args.trajectories]
    packed, unrolled = [], []
    for problem in problems:
        messages = [{"role": "user", "content": f"Solve the following problem.\n\nProblem: {problem.question}"},
                    {"role": "assistant", "content": teacher.full(problem, problem.answer, "boxed",
                                                                  "threadweaver", False)}]
        prompt, completion = encode_chat(tokenizer, messages)
        packed.append(threadweaver.pack(prompt, completion, tags))
        for ids, trained in threadweaver.sequences(prompt, completion, tags):
            example = causal(ids, [])
            example.labels = [t if keep else -100 for t, keep in zip(ids, trained)]
            unrolled.append(example)
    packed_tokens = sum(len(e) for e in packed)
    unrolled_tokens = sum(len(e) for e in unrolled)
    log(f"{len(problems)} trajectories: {len(unrolled)} unrolled rows, {unrolled_tokens} tokens; "
        f"{len(packed)} packed rows, {packed_tokens} tokens")
    batches = {"unrolled": collate(unrolled, tokenizer.pad_token_id), "packed": collate(packed, tokenizer.pad_token_id)}

    def step(batch) -> float:
        model.zero_grad()
        start = time.perf_counter()
        out = model(**batch)
        out.loss.backward()
        return time.perf_counter() - start

    for batch in batches.values():  # warm-up
        step(batch)
    times = {"unrolled": [], "packed": []}
    for _ in range(args.repetitions):
        for name, batch in batches.items():
            times[name].append(step(batch))
    ratios = [u / k for u, k in zip(times["unrolled"], times["packed"])]
    token_ratio = unrolled_tokens / packed_tokens
    emit({"bench": "trie_packing", "ratio": round(statistics.median(ratios), 3), "target": args.target,
          "token_ratio": round(token_ratio, 3), "token_target": args.target,
          "time_ratio_spread": [round(min(ratios), 3), round(max(ratios), 3)],
          "unrolled_tokens": unrolled_tokens, "packed_tokens": packed_tokens,
          "unrolled_rows": len(unrolled), "packed_rows": len(packed),
          "unrolled_step_s": round(statistics.median(times["unrolled"]), 4),
          "packed_step_s": round(statistics.median(times["packed"]), 4),
          "per_trajectory_unrolled_s": round(statistics.median(times["unrolled"]) / len(problems), 5),
          "per_trajectory_packed_s": round(statistics.median(times["packed"]) / len(problems), 5),
          "trajectories": len(problems), "repetitions": args.repetitions})


if __name__ == "__main__":
    main()
