"""Procedural tasks with exact answers that the toolkit embeds (no hub needed): `arith`."""
