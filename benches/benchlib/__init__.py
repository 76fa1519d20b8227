"""Helpers shared by the benches (not benches themselves: nothing here prints a result line).

Benches run as scripts (`python benches/x.py` puts benches/ on sys.path) and import these as
`from benchlib.common import ...`.
"""
