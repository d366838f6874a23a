"""``ebm-ppl logz``: log Z of a saved model by forward (and reverse) AIS, with its health plot.

Forward AIS (:func:`ebm_ppl.ais`) gives a stochastic lower bound of log Z; reverse AIS
(:func:`ebm_ppl.reverse_ais`) started from exact samples gives a stochastic upper bound, and from
data an approximate one (Burda et al. 2015; Upadhya & Sastry 2015 for RBMs). Together they are
the sandwich (:func:`ebm_ppl.sandwich`); where the model is small enough, the exact value
(:func:`ebm_ppl.log_partition`) is printed next to them.
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import ebm_ppl as ep
from ebm_ppl._version import __version__
from ebm_ppl.cli import (
    EXIT_OK,
    PROG,
    _describe_model,
    _int_in,
    _load_model,
    _prepare_out_dir,
    _progress_enabled,
    _write_atomic,
    _write_json,
    command,
)
from ebm_ppl.partition import AISEstimate, Sandwich, exact_samples

__all__ = ["HEALTH_PLOT", "RESULTS_FILE", "health_figure"]

#: File names inside the --out folder.
HEALTH_PLOT = "ais_health.png"
RESULTS_FILE = "logz.json"
DATA_SETS = ("digits",)
#: default_schedule's minimum: its three linear pieces need a few temperatures each.
MIN_TEMPERATURES = 10
_DIGITS_SHAPE = (64,)
_TERMS = re.compile(r"needs (2\^\d+) terms")


class _Data:
    """Train images (the AIS base is fitted to them; reverse AIS may start from them) and test images."""

    def __init__(self, name: str, scaling: str, x_train: np.ndarray, x_test: np.ndarray):
        self.name, self.scaling, self.x_train, self.x_test = name, scaling, x_train, x_test

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "scaling": self.scaling, "n_train": int(len(self.x_train)),
                "n_test": int(len(self.x_test))}


def _load_data(name: str | None, model: ep.Potential, model_file: str) -> _Data | None:
    """The digits in the scaling the model's support needs, or a clear refusal."""
    if name is None:
        return None
    if tuple(model.event_shape) != _DIGITS_SHAPE:
        raise ValueError(
            f"--data digits: the digits are 64 pixels, but {model_file} holds a {_describe_model(model)} "
            f"model of event shape {tuple(model.event_shape)}; leave --data out for this model"
        )
    if model.support == ep.Support.BINARY:
        d = ep.data.digits(binarize=True)
        return _Data(name, "binarized at pixel >= 8", d.x_train, d.x_test)
    d = ep.data.digits(scale="signed")
    return _Data(name, "scaled to [-1, 1]", d.x_train, d.x_test)


def _reverse_start(key, model: ep.Potential, num: int, data: _Data | None, model_file: str):
    """``(start, exact, description)``: exact samples where they can be drawn, else test images
    (whose reverse chains also give RAISE's conservative estimate of their log-likelihood)."""
    try:
        return np.asarray(exact_samples(key, model, num)), True, f"{num} exact samples"
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
    return data.x_test[index], False, f"{num} test images ({reason})"


def _exact_log_z(model: ep.Potential) -> tuple[float | None, str]:
    """``(log Z, how)`` or ``(None, why not)``; the enumeration limit is ep.log_partition's."""
    try:
        value = float(ep.log_partition(model))
    except ValueError as exc:
        terms = _TERMS.search(str(exc))
        if terms:
            return None, f"not feasible ({terms.group(1)} terms)"
        return None, f"not available ({' '.join(str(exc).split())})"
    how = "closed form" if isinstance(model, ep.Gaussian) else "enumeration"
    return value, how


# -- the health plot ----------------------------------------------------------------------------
def health_figure(forward: AISEstimate, reverse: AISEstimate | None, exact: float | None,
                  title: str) -> Figure:
    """Left: variance over chains of the accumulated log-weights along the schedule (where it
    climbs steeply the schedule is too coarse). Right: histogram of the per-chain log-weights,
    shown as the log Z each chain alone implies (log Z_0 + log w forward, log Z_0 - log w reverse),
    with the estimates and the exact value."""
    fig = Figure(figsize=(11, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)

    # log_weight_var[k] is the variance after the move to schedule[k + 1] (reverse: along the
    # reversed schedule); every run starts with all log-weights 0, so variance 0 at its first beta.
    schedule = np.asarray(forward.schedule)
    left.plot(schedule, np.concatenate([[0.0], forward.log_weight_var]), color="C0", label="forward (β 0 → 1)")
    if reverse is not None:
        left.plot(np.asarray(reverse.schedule)[::-1], np.concatenate([[0.0], reverse.log_weight_var]),
                  color="C1", label="reverse (β 1 → 0)")
    left.set_xlabel(f"inverse temperature β (schedule of {forward.num_temperatures} temperatures)")
    left.set_ylabel("variance of log w over chains")
    left.set_title("log-weight variance (a steep climb: the schedule is too coarse there)",
                   fontsize="medium")
    left.legend(loc="upper left", fontsize="small")

    per_chain = [("forward", forward.base_log_z + forward.log_weights, "C0")]
    if reverse is not None:
        per_chain.append(("reverse", reverse.base_log_z - reverse.log_weights, "C1"))
    values = np.concatenate([v for _, v, _ in per_chain])
    values = values[np.isfinite(values)]
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    pad = max(1e-6, 0.05 * (hi - lo))
    bins = np.linspace(lo - pad, hi + pad, 31)
    for label, v, color in per_chain:
        right.hist(v[np.isfinite(v)], bins=bins, alpha=0.5, color=color, label=f"{label} chains")
    right.axvline(forward.log_z, color="C0", linestyle="--", label=f"forward {forward.log_z:.4f}")
    if reverse is not None:
        right.axvline(reverse.log_z, color="C1", linestyle="--", label=f"reverse {reverse.log_z:.4f}")
    if exact is not None:
        right.axvline(exact, color="k", linestyle=":", label=f"exact {exact:.4f}")
    right.set_xlabel("log Z implied by one chain (log Z₀ ± log w)")
    right.set_ylabel("chains")
    right.set_title(f"log-weights of {forward.num_chains} chains (weight ESS {forward.ess:.1f}"
                    + (f" / {reverse.ess:.1f}" if reverse is not None else "") + ")", fontsize="medium")
    right.ticklabel_format(axis="x", useOffset=False)
    right.legend(loc="upper right", fontsize="small")
    fig.suptitle(title)
    return fig


# -- the command ----------------------------------------------------------------------------------
def _logz_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL_FILE", help="a model saved with ep.save (.ebm)")
    parser.add_argument("--chains", type=_int_in(2), default=100, metavar="INT",
                        help="AIS runs (the error bar needs several; >= 2) [default: %(default)s]")
    parser.add_argument("--temperatures", type=_int_in(MIN_TEMPERATURES), default=10000, metavar="INT",
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
    parser.add_argument("--seed", type=_int_in(0, 2**32 - 1), default=0, metavar="INT",
                        help="PRNG seed [default: %(default)s]")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no next-step hints")


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
def _logz(args: argparse.Namespace) -> int:
    """Estimate the log partition function of a saved model by annealed importance sampling.

    Forward AIS (ep.ais) from a tractable base (the base-rate model fitted to --data, else the
    uniform / standard-normal one) gives log Z with a delta-method error bar and the weights'
    effective sample size; it underestimates log Z in expectation. With --reverse, reverse AIS
    (ep.reverse_ais) runs the same path back from exact samples (ep.partition.exact_samples;
    an upper bound in expectation) or, where none can be drawn, from test images (an
    approximate one, and RAISE's conservative estimate of those images' mean log-likelihood);
    the two make the sandwich, which with --data also brackets the mean test log-likelihood. The exact log Z (ep.log_partition) is printed where the enumeration is
    feasible. Writes DIR/ais_health.png (log-weight variance along the schedule, histogram of
    the log-weights) and DIR/logz.json.
    """
    model_file = args.model
    model = _load_model(model_file)
    data = _load_data(args.data, model, model_file)
    key_forward, key_start, key_reverse = jax.random.split(jax.random.key(args.seed), 3)
    start = None
    if args.reverse:
        start, exact_start, start_about = _reverse_start(key_start, model, args.chains, data, model_file)
    model_path = Path(model_file).expanduser()
    out = _prepare_out_dir(args.out if args.out else str(model_path.parent / f"{model_path.stem}_logz"))
    progress = _progress_enabled(args.quiet)
    x_train = None if data is None else data.x_train
    base = (f"fitted to the {data.name} train set ({data.scaling}, {len(data.x_train)} images)"
            if data is not None else "the library's default for this family (no --data)")
    print(f"Model: {model_file} ({_describe_model(model)}); seed {args.seed}")
    print(f"AIS base: {base}; {args.chains} chains, {args.temperatures} temperatures", flush=True)
    print()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        forward = ep.ais(key_forward, model, num_chains=args.chains, num_temperatures=args.temperatures,
                         data=x_train, progress=progress)
        reverse = None
        if start is not None:
            reverse = ep.reverse_ais(key_reverse, model, start, exact=exact_start,
                                     num_temperatures=args.temperatures, data=x_train, progress=progress)
        both: Sandwich | None = None
        if reverse is not None:
            both = ep.sandwich(forward, reverse, model, None if data is None else data.x_test)
        exact, exact_how = _exact_log_z(model)
    notes = [" ".join(str(w.message).split()) for w in caught]
    for note in notes:
        print(f"{PROG}: warning: {note}", file=sys.stderr)

    mean_test_neg_energy = None if data is None else float(np.mean(-np.asarray(model.energy(data.x_test))))
    print(f"forward AIS:  {forward}")
    raise_ll = None
    if reverse is not None:
        print(f"reverse AIS:  {reverse}; started from {start_about}")
        if not exact_start:
            raise_ll = float(np.mean(reverse.start_log_likelihood))
            print(f"RAISE:        {raise_ll:.4f} nats per image: mean log-likelihood of the {len(start)} test "
                  "images the reverse chains started from, a conservative estimate (lower in expectation)")
    if both is not None:
        print(f"sandwich:     {both}"
              + (f" (mean over the {len(data.x_test)} test images, nats)" if data is not None else ""))
        if both.gap < -2.0 * math.hypot(both.stderr_lower, both.stderr_upper):
            print("              the bounds cross by more than two standard errors: the runs are too short "
                  "(raise --temperatures or --chains)" + ("" if exact_start else
                                                         ", or the data are far from the model's samples"))
    elif mean_test_neg_energy is not None:
        print(f"test LL:      {mean_test_neg_energy - forward.log_z:.4f} nats per image from the forward "
              f"estimate (an overestimate in expectation; {len(data.x_test)} test images)")
    if exact is not None:
        diffs = [f"forward - exact {forward.log_z - exact:+.4f}"]
        if reverse is not None:
            diffs.append(f"reverse - exact {reverse.log_z - exact:+.4f}")
        test = (f"; exact mean test log-likelihood {mean_test_neg_energy - exact:.4f}"
                if mean_test_neg_energy is not None else "")
        print(f"exact:        log Z = {exact:.4f} ({exact_how}); {', '.join(diffs)} nats{test}")
    else:
        print(f"exact:        {exact_how}")

    title = f"AIS health: {model_path.name} ({_describe_model(model)})"
    fig = health_figure(forward, reverse, exact, title)
    plot_path = out / HEALTH_PLOT
    _write_atomic(plot_path, lambda tmp: fig.savefig(tmp, format="png"))
    results = {
        "command": "logz",
        "ebm_ppl_version": __version__,
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "model_file": str(model_path.resolve()),
        "model": _describe_model(model),
        "seed": args.seed,
        "num_chains": args.chains,
        "num_temperatures": args.temperatures,
        "data": None if data is None else data.to_dict(),
        "forward": _estimate_dict(forward),
        "reverse": None if reverse is None else {**_estimate_dict(reverse), "start": start_about,
                                                 "exact_start": exact_start,
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
    _write_json(results_path, _finite_or_none(results))
    print()
    print(f"Saved to {out}/:")
    print(f"  {plot_path}")
    print(f"  {results_path}")
    if not args.quiet and not args.reverse:
        print()
        print("Next step:")
        print(f"  {PROG} logz {shlex.quote(model_file)} --reverse"
              + (f" --data {args.data}" if args.data else "") + "   # the upper side of the sandwich too")
    return EXIT_OK


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


def _finite_or_none(tree: Any) -> Any:
    """NaN/inf become null: JSON has no such numbers, and a degenerate run should still be saved."""
    if isinstance(tree, dict):
        return {k: _finite_or_none(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_finite_or_none(v) for v in tree]
    if isinstance(tree, float) and not math.isfinite(tree):
        return None
    return tree
