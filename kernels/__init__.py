"""Kernel families. Each public module defines ``FAMILY = harness.family.Family(...)``: a generator, a NumPy
reference and tolerances, and nothing else. Modules whose names start with ``_`` are shared building blocks.
"""
