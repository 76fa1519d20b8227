"""synthesis: data pipelines. It owns problem pairing and MathFusion (sequential, parallel and
conditional fusion), Fusion-of-N data over a teacher pool, and parallel-thinking trajectories
for training (Parallel-R1, ThreadWeaver, ParaThinker). It generates through `reasoning`'s
engines and store, and filters with `eval`'s grader."""
