"""One typed program IR for kernel families (issue #13): types, the operation table, nodes, one printer to Warp
source, one vectorised NumPy interpreter, one interval engine, analyses, random builders and a family adapter.

The package name starts with an underscore so that ``harness.registry.all_families`` (which imports every
public module of ``kernels``) does not take it for a family.
"""
