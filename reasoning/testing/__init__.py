"""Helpers for tests and benches: local OpenAI-compatible servers (real and fault-injecting)."""
