"""warp-kernel-factory harness: the pytest plugin that turns generated Warp kernels into verified records.

Data flows one way::

    seed -> KernelSpec (kernels/<family>.py) -> Warp module (build.py) -> compile (build.py)
         -> run + compare (verify.py) -> record (record.py) -> report -> writer (writer.py, controller only)
"""

GENERATOR_API_VERSION = 4   # 2: generated names without Warp's hash suffix (strip_hash); 3: records rebuild
#                             from their own fields (blocks keyed by signature), SASS resources, token counts;
#                             4: kernel names carry 6 hex digits of the source's hash, not 10
