"""Suite-wide fixtures."""

from __future__ import annotations

import gc

import jax
import pytest


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module. XLA's CPU backend maps every
    executable's code into memory; the whole suite compiles tens of thousands of programs and,
    kept alive in the jit caches, their mappings pass Linux's default limit of 65,530 per process
    (vm.max_map_count), at which point the next compilation segfaults."""
    yield
    jax.clear_caches()
    gc.collect()
