"""Suite-wide fixtures."""

from __future__ import annotations

import atexit
import gc
import os
import shutil
import tempfile

import jax
import pytest

from ebm_ppl.compiler import cache_dir, enable_persistent_cache

# Compiled programs are shared across the suite through JAX's persistent compilation cache in a
# temporary folder (removed at the end): the fixture below empties the in-memory caches after every
# module, and many modules compile the same programs. The command line's own cache
# (ebm_ppl.compiler.enable_persistent_cache, which the CLI tests call in this process and in
# subprocesses) is pointed at the same folder, never at the user's. EBM_PPL_COMPILE_CACHE=off (or a
# folder) set by the caller is respected; the tests that check the cache set it themselves.
if "EBM_PPL_COMPILE_CACHE" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="ebm_ppl_test_xla_")
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
    os.environ["EBM_PPL_COMPILE_CACHE"] = _CACHE
if cache_dir() is not None:
    enable_persistent_cache(cache_dir())


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module. XLA's CPU backend maps every
    executable's code into memory; the whole suite compiles tens of thousands of programs and,
    kept alive in the jit caches, their mappings pass Linux's default limit of 65,530 per process
    (vm.max_map_count), at which point the next compilation segfaults."""
    yield
    jax.clear_caches()
    gc.collect()
