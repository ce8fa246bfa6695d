"""Experiments run by ``s2vt bench --experiment NAME``: questions about accuracy that a
speed figure does not answer, each in its own module, reported apart from the ratios."""
