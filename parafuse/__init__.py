"""parafuse: the command-line root. Each package mounts its own sub-commands here."""

__version__ = "0.1.0"
