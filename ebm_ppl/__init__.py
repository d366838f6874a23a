"""ebm_ppl: energy-based models as first-class potentials for JAX probabilistic programming.

    import ebm_ppl as ep
    data = ep.data.digits(binarize=True)
    rbm = ep.BernoulliRBM.init(key, n_visible=64, n_hidden=16)
    ep.log_partition(rbm)

Every name below loads on first use (PEP 562): ``import ebm_ppl`` itself imports almost nothing,
so a script pays only for what it touches (``ep.diagnostics`` brings ArviZ, xarray and
matplotlib; ``ep.kernels`` BlackJAX; ``ep.numpyro`` NumPyro), and the ``ebm-ppl`` command can
join a ``jax.distributed`` run before anything starts JAX's backend (BlackJAX's import does).
"""

from ebm_ppl._version import __version__
from ebm_ppl.lazy import lazy_names

__all__ = [
    "__version__",
    "data",
    "kernels",
    "moves",
    "random",
    "sharding",
    "compiler",
    "checks",
    "sample",
    "diagnostics",
    "diagnose",
    "report",
    "partition",
    "training",
    "numpyro",
    "testing",
    "fit",
    "ais",
    "reverse_ais",
    "log_likelihood",
    "sandwich",
    "load",
    "save",
    "Potential",
    "Support",
    "potential",
    "box",
    "categorical",
    "register_potential",
    "get_potential",
    "list_potentials",
    "log_partition",
    "Gaussian",
    "BoltzmannMachine",
    "BernoulliRBM",
    "GaussianBernoulliRBM",
    "SubspaceRBM",
    "ClassRBM",
    "RBM",
    "layers",
    "JEM",
]

#: Submodules reached as attributes.
_MODULES = ("checks", "compiler", "data", "diagnostics", "inference", "kernels", "moves", "numpyro", "partition",
            "random", "sharding", "testing", "training")
#: Other names: the module each comes from.
_FROM = {
    "sample": "ebm_ppl.inference",
    "load": "ebm_ppl.io", "save": "ebm_ppl.io",
    "fit": "ebm_ppl.training",
    "ais": "ebm_ppl.partition", "reverse_ais": "ebm_ppl.partition", "log_likelihood": "ebm_ppl.partition",
    "sandwich": "ebm_ppl.partition",
    "diagnose": "ebm_ppl.diagnostics", "report": "ebm_ppl.diagnostics",
    **{name: "ebm_ppl.potentials" for name in (
        "JEM", "BernoulliRBM", "BoltzmannMachine", "ClassRBM", "Gaussian", "GaussianBernoulliRBM", "Potential",
        "RBM", "SubspaceRBM", "Support", "layers", "box", "categorical", "potential", "get_potential",
        "list_potentials", "log_partition", "register_potential")},
}


__getattr__, __dir__ = lazy_names(globals(), {**{name: f"ebm_ppl.{name}" for name in _MODULES}, **_FROM})
del lazy_names  # the package's names are its public ones
