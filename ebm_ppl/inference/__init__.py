"""Running chains: many chains with vmap, steps with lax.scan, results as ArviZ data."""

from ebm_ppl.inference.sampling import KERNELS, default_kernel, sample

__all__ = ["sample", "KERNELS", "default_kernel"]
