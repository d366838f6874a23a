"""``ebm-ppl logz``: log Z of a saved model by forward (and reverse) AIS, with its health plot.

Forward AIS (:func:`ebm_ppl.ais`) gives a stochastic lower bound of log Z; reverse AIS
(:func:`ebm_ppl.reverse_ais`) started from exact samples gives a stochastic upper bound, and from
data an approximate one (Burda et al. 2015; Upadhya & Sastry 2015 for RBMs). Together they are
the sandwich (:func:`ebm_ppl.sandwich`); where the model is small enough, the exact value
(:func:`ebm_ppl.log_partition`) is printed next to them. The health plot is
:func:`ebm_ppl.diagnostics.figures.ais_health_figure`.
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

import ebm_ppl as ep
from ebm_ppl.cli.app import EXIT_OK, PROG, command
from ebm_ppl.cli.helpers import (describe_model, finite_or_none, int_in, load_model, max_memory_bytes,
                                 max_memory_option, out_dir, print_hints, print_warnings, progress_enabled,
                                 quiet_option, seed_option, warnings_to, write_atomic, write_json)
from ebm_ppl.diagnostics.figures import ais_health_figure
from ebm_ppl.partition import AISEstimate, exact_samples
from ebm_ppl.partition.schedule import MIN_TEMPERATURES

__all__ = ["HEALTH_PLOT", "RESULTS_FILE", "DATA_SETS", "MIN_TEMPERATURES"]

#: File names inside the --out folder.
HEALTH_PLOT = "ais_health.png"
RESULTS_FILE = "logz.json"
DATA_SETS = ("digits",)
_DIGITS_SHAPE = (64,)
_TERMS = re.compile(r"(?:needs|need enumerating) (2\^\d+|[0-9.e+]+) (?:terms|states)")


class _Data(NamedTuple):
    """Train images (the AIS base is fitted to them; reverse AIS may start from them) and test images."""

    name: str
    scaling: str
    x_train: np.ndarray
    x_test: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "scaling": self.scaling, "n_train": int(len(self.x_train)),
                "n_test": int(len(self.x_test))}


def _load_data(name: str | None, model: ep.Potential, model_file: str) -> _Data | None:
    """The digits in the scaling the model's support needs, or a clear refusal."""
    if name is None:
        return None
    if tuple(model.event_shape) != _DIGITS_SHAPE:
        raise ValueError(
            f"--data digits: the digits are 64 pixels, but {model_file} holds a {describe_model(model)} "
            f"model of event shape {tuple(model.event_shape)}; leave --data out for this model"
        )
    if model.support == ep.Support.BINARY:
        d = ep.data.digits(binarize=True)
        return _Data(name, "binarized at pixel >= 8", d.x_train, d.x_test)
    d = ep.data.digits(scale="signed")
    return _Data(name, "scaled to [-1, 1]", d.x_train, d.x_test)


class _Start(NamedTuple):
    """Where reverse AIS starts: ``x`` (chains, *event), whether they are exact samples, in words."""

    x: np.ndarray
    exact: bool
    about: str


def _reverse_start(key, model: ep.Potential, num: int, data: _Data | None, model_file: str) -> _Start:
    """Exact samples where they can be drawn, else test images (whose reverse chains also give
    RAISE's conservative estimate of their log-likelihood)."""
    try:
        return _Start(np.asarray(exact_samples(key, model, num)), True, f"{num} exact samples")
    except ValueError as exc:
        terms = _TERMS.search(str(exc))
        family = getattr(type(model), "name", type(model).__name__)
        reason = (f"exact samples would enumerate {terms.group(1)} states" if terms
                  else f"there is no exact sampler for {family}")
    if data is None:
        raise ValueError(
            f"--reverse: {reason} ({model_file}); pass --data digits to start reverse AIS from the "
            "test images instead (an approximate upper bound, and a conservative test log-likelihood)"
        )
    n = len(data.x_test)
    index = np.asarray(jax.random.choice(key, n, (num,), replace=num > n))
    return _Start(data.x_test[index], False, f"{num} test images ({reason})")


def _exact_log_z(model: ep.Potential) -> tuple[float | None, str]:
    """``(log Z, how)`` or ``(None, why not)``; the enumeration limit is ep.log_partition's. A log Z
    that needs no terms (``max_terms=1`` accepted) is a closed form, any other an enumeration."""
    try:
        value = float(ep.log_partition(model))
    except ValueError as exc:
        terms = _TERMS.search(str(exc))
        if terms:
            return None, f"not feasible ({terms.group(1)} terms)"
        return None, f"not available ({' '.join(str(exc).split())})"
    try:
        ep.log_partition(model, max_terms=1)
    except ValueError:
        return value, "enumeration"
    return value, "closed form"


def _logz_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL_FILE", help="a model saved with ep.save (.ebm)")
    parser.add_argument("--chains", type=int_in(2), default=100, metavar="INT",
                        help="AIS runs (the error bar needs several; >= 2) [default: %(default)s]")
    parser.add_argument("--temperatures", type=int_in(MIN_TEMPERATURES), default=10000, metavar="INT",
                        help=f"intermediate distributions K, >= {MIN_TEMPERATURES} "
                        "(ep.partition.default_schedule, denser near beta = 1) [default: %(default)s]")
    parser.add_argument(
        "--reverse", action="store_true",
        help="also run reverse AIS (an upper bound) from exact samples where the model allows them, "
        "else from the test images of --data (an approximate upper bound, and RAISE's conservative "
        "test log-likelihood)",
    )
    parser.add_argument(
        "--data", choices=DATA_SETS, metavar="NAME",
        help="fit the AIS base to this data set's train split and report the sandwich of its test "
        "log-likelihood: 'digits' (binarized for binary 64-pixel models, scaled to [-1, 1] for real ones)",
    )
    parser.add_argument(
        "--out", metavar="DIR",
        help=f"folder for {HEALTH_PLOT} and {RESULTS_FILE} (created) [default: MODEL_STEM_logz/ next to "
        "the model file]",
    )
    seed_option(parser, "PRNG seed")
    max_memory_option(parser, "each AIS run's arrays")
    quiet_option(parser)


@command(
    "logz",
    help="log Z of a saved model by forward/reverse AIS, against the exact value where feasible",
    example=(
        "logz runs/quickstart/rbm.ebm --reverse --data digits\n"
        "logz rbm.ebm --chains 500 --temperatures 30000 --out runs/rbm-logz\n"
        "logz gaussian.ebm --reverse --chains 200 --seed 1"
    ),
    arguments=_logz_arguments,
)
def run(args: argparse.Namespace) -> int:
    """Estimate the log partition function of a saved model by annealed importance sampling.

    Forward AIS (ep.ais) from a tractable base (the base-rate model fitted to --data, else
    the model with its couplings set to zero, or N(0, I)) gives log Z with a delta-method
    error bar and the weights' effective sample size; it underestimates log Z in
    expectation. With --reverse, reverse AIS (ep.reverse_ais) runs the same path back from
    exact samples (ep.partition.exact_samples; an upper bound in expectation) or, where none
    can be drawn, from test images (an approximate one, and RAISE's conservative estimate of
    those images' mean log-likelihood); the two make the sandwich, which with --data also
    brackets the mean test log-likelihood. The exact log Z (ep.log_partition) is printed
    where the enumeration is feasible. Writes DIR/ais_health.png (log-weight variance along
    the schedule, histogram of the log-weights) and DIR/logz.json.
    """
    model_file = args.model
    model = load_model(model_file)
    data = _load_data(args.data, model, model_file)
    key_forward, key_start, key_reverse = jax.random.split(jax.random.key(args.seed), 3)
    start = _reverse_start(key_start, model, args.chains, data, model_file) if args.reverse else None
    model_path = Path(model_file).expanduser()
    with out_dir(args.out if args.out else str(model_path.parent / f"{model_path.stem}_logz")) as out:
        return _logz(args, model, data, start, (key_forward, key_reverse), out)


def _logz(args: argparse.Namespace, model: ep.Potential, data: _Data | None, start: _Start | None, keys,
          out: Path) -> int:
    """The AIS runs, the printout and the files (``run`` after its checks)."""
    key_forward, key_reverse = keys
    model_file, model_path = args.model, Path(args.model).expanduser()
    progress = progress_enabled(args.quiet)
    max_memory = max_memory_bytes(args)  # {} or {"max_memory": bytes}
    x_train = None if data is None else data.x_train
    base = (f"fitted to the {data.name} train set ({data.scaling}, {len(data.x_train)} images)"
            if data is not None else "the library's default for this family (no --data)")
    print(f"Model: {model_file} ({describe_model(model)}); seed {args.seed}")
    print(f"AIS base: {base}; {args.chains} chains, {args.temperatures} temperatures", flush=True)
    print()

    notes: list[str] = []
    with warnings_to(notes):
        forward = ep.ais(key_forward, model, num_chains=args.chains, num_temperatures=args.temperatures,
                         data=x_train, progress=progress, **max_memory)
        reverse = both = None
        if start is not None:
            reverse = ep.reverse_ais(key_reverse, model, start.x, exact=start.exact,
                                     num_temperatures=args.temperatures, data=x_train, progress=progress,
                                     **max_memory)
            both = ep.sandwich(forward, reverse, model, None if data is None else data.x_test)
        exact, exact_how = _exact_log_z(model)
    print_warnings(notes)

    mean_test_neg_energy = None if data is None else float(np.mean(-np.asarray(model.energy(data.x_test))))
    raise_ll = _print_estimates(forward, reverse, both, exact, exact_how, data, start, mean_test_neg_energy)

    title = f"AIS health: {model_path.name} ({describe_model(model)})"
    fig = ais_health_figure(forward, reverse, exact, title)
    plot_path = out / HEALTH_PLOT
    write_atomic(plot_path, lambda tmp: fig.savefig(tmp, format="png"))
    results = {
        "command": "logz",
        "ebm_ppl_version": ep.__version__,
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "model_file": str(model_path.resolve()),
        "model": describe_model(model),
        "seed": args.seed,
        "num_chains": args.chains,
        "num_temperatures": args.temperatures,
        "data": None if data is None else data.to_dict(),
        "forward": _estimate_dict(forward),
        "reverse": None if reverse is None else {**_estimate_dict(reverse), "start": start.about,
                                                 "exact_start": start.exact,
                                                 "raise_mean_log_likelihood": raise_ll},
        "sandwich": None if both is None else {
            "log_z_lower": both.log_z_lower, "log_z_upper": both.log_z_upper, "gap": both.gap,
            "mean_test_log_likelihood_lower": both.mean_log_likelihood_lower,
            "mean_test_log_likelihood_upper": both.mean_log_likelihood_upper,
        },
        "exact": ({"log_z": exact, "method": exact_how,
                   "mean_test_log_likelihood": (None if mean_test_neg_energy is None
                                                else mean_test_neg_energy - exact)}
                  if exact is not None else {"log_z": None, "note": exact_how}),
        "warnings": notes,
        "files": {"health_plot": HEALTH_PLOT},
    }
    results_path = out / RESULTS_FILE
    write_json(results_path, finite_or_none(results))
    print()
    print(f"Saved to {out}/:")
    print(f"  {plot_path}")
    print(f"  {results_path}")
    if not args.quiet and not args.reverse:
        print_hints("Next step:", [(f"{PROG} logz {shlex.quote(model_file)} --reverse"
                                    + (f" --data {args.data}" if args.data else ""),
                                    "the upper side of the sandwich too")])
    return EXIT_OK


def _print_estimates(forward, reverse, both, exact, exact_how, data, start, mean_test_neg_energy) -> float | None:
    """Print the estimates, the sandwich and the exact value; return RAISE's mean test
    log-likelihood where reverse AIS started from test images, else None."""
    print(f"forward AIS:  {forward}")
    raise_ll = None
    if reverse is not None:
        print(f"reverse AIS:  {reverse}; started from {start.about}")
        if not start.exact:
            raise_ll = float(np.mean(reverse.start_log_likelihood))
            print(f"RAISE:        {raise_ll:.4f} nats per image: mean log-likelihood of the {len(start.x)} test "
                  "images the reverse chains started from, a conservative estimate (lower in expectation)")
    if both is not None:
        print(f"sandwich:     {both}"
              + (f" (mean over the {len(data.x_test)} test images, nats)" if data is not None else ""))
        if both.gap < -2.0 * math.hypot(both.stderr_lower, both.stderr_upper):
            print("              the bounds cross by more than two standard errors: the runs are too short "
                  "(raise --temperatures or --chains)" + ("" if start.exact else
                                                         ", or the data are far from the model's samples"))
    elif mean_test_neg_energy is not None:
        print(f"test LL:      {mean_test_neg_energy - forward.log_z:.4f} nats per image from the forward "
              f"estimate (an overestimate in expectation; {len(data.x_test)} test images)")
    if exact is None:
        print(f"exact:        {exact_how}")
        return raise_ll
    diffs = [f"forward - exact {forward.log_z - exact:+.4f}"]
    if reverse is not None:
        diffs.append(f"reverse - exact {reverse.log_z - exact:+.4f}")
    test = (f"; exact mean test log-likelihood {mean_test_neg_energy - exact:.4f}"
            if mean_test_neg_energy is not None else "")
    print(f"exact:        log Z = {exact:.4f} ({exact_how}); {', '.join(diffs)} nats{test}")
    return raise_ll


def _estimate_dict(est: AISEstimate) -> dict[str, Any]:
    return {
        "log_z": est.log_z,
        "stderr": est.stderr,
        "bound": est.bound,
        "weight_ess": est.ess,
        "num_chains": est.num_chains,
        "num_temperatures": est.num_temperatures,
        "base_log_z": est.base_log_z,
        "final_log_weight_var": float(est.log_weight_var[-1]) if est.log_weight_var.size else None,
        "wall_time_seconds": est.wall_time,
    }
