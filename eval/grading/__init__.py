"""Grading: answer extraction and equivalence (math-verify with fast paths and hard time limits).

    from eval.grading import grade_pair
    grade_pair("3/4", "... so we get $\\frac{3}{4}$")   # Grade(correct=True, extractor='last_math', ...)
"""
from eval.grading.equivalence import Grader
from eval.grading.extract import extract_answer, extract_parts
from eval.grading.regrade import GradeSettings, grade_file, grade_pair, grade_pairs

__all__ = ["GradeSettings", "Grader", "extract_answer", "extract_parts", "grade_file", "grade_pair", "grade_pairs"]
