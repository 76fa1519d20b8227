"""Grading: answer extraction and equivalence (math-verify with fast paths and hard time limits)."""
from eval.grading.equivalence import Grader
from eval.grading.extract import extract_answer

__all__ = ["Grader", "extract_answer"]
