"""Grading: answer extraction and equivalence (math-verify with fast paths and hard time limits)."""
