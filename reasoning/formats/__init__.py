"""Parallel-thinking formats (Parallel-R1, ThreadWeaver, ParaThinker): their tags, and the
parsers, validators and serializers to and from one trace tree."""
