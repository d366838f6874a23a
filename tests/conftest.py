"""Suite-wide fixtures."""

from __future__ import annotations

import gc
import os

import jax
import pytest

# The command line keeps compiled programs on disk (ebm_ppl.compiler.enable_persistent_cache); the
# CLI tests call it in this process, which would switch JAX's cache on for every test after them
# and write to the user's cache folder. The tests that check the cache set the variable themselves.
os.environ.setdefault("EBM_PPL_COMPILE_CACHE", "off")


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module. XLA's CPU backend maps every
    executable's code into memory; the whole suite compiles tens of thousands of programs and,
    kept alive in the jit caches, their mappings pass Linux's default limit of 65,530 per process
    (vm.max_map_count), at which point the next compilation segfaults."""
    yield
    jax.clear_caches()
    gc.collect()
