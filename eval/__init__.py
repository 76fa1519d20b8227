"""eval: evaluation. It owns benchmarks, answer extraction and equivalence (grading), majority
vote and best-of-N, pass@k / maj@k, test-time-scaling sweeps, Pareto frontiers,
saturation-point fits and reports with plots. It generates through `reasoning`."""
