"""One typed program IR for kernel families (issue #13): types, the operation table, nodes, one printer to Warp
source, one vectorised NumPy interpreter, one interval engine, analyses, random builders and a family adapter.

``harness.registry.all_families`` skips packages, so this one is not taken for a family.
"""
