"""Fusion-of-N data (Khairi et al., "Making, not Taking, the Best of N"): a teacher pool answers
every prompt, and a fusor model writes one answer from all N candidates.

    prompt ──teacher 1 (n1 samples), teacher 2 (n2), ...──▶ N candidates ──fusor──▶ one fused answer

The paper's pool was five strong models, one sample each at T=0.3, fused by a sixth; here the
pool is any list of engines and models (`ENGINE:MODEL[@BASE_URL][*N]`). The fusor prompt is
the same template eval's `fusion` strategy uses at test time (`fusion/fuse` for math,
`fusion/fuse_general` for open-ended prompts), so data and test-time aggregation stay one method.
For math prompts with a gold answer every candidate and the fusion are graded, which shows what
the paper claims and the digest warns about: the fusion can beat the best candidate, and it can
also overwrite a correct majority.
"""
from __future__ import annotations

from synthesis.fusion_data.generate import FusionDataOutcome, FusionDataRun, TeacherSpec, parse_teacher
from synthesis.fusion_data.pipeline import summary, synthesize_fusion_data

__all__ = ["FusionDataOutcome", "FusionDataRun", "TeacherSpec", "parse_teacher", "summary", "synthesize_fusion_data"]
