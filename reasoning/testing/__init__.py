"""Helpers for the tests and benches of a checkout (not installed with the package): local
OpenAI-compatible servers (real and fault-injecting) and a scripted synthesis teacher."""
