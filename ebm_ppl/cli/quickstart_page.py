"""The quickstart's results for people: ``report.html`` (one self-contained page) and the summary
printed at the end, both read from the ``summary.json`` dict."""

from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import Any

from ebm_ppl.cli.app import PROG
from ebm_ppl.cli.helpers import format_table, print_hints
from ebm_ppl.cli.quickstart_models import LANGEVIN_NOISE, LANGEVIN_STEP, LANGEVIN_TEMPERATURE, SAMPLER_TITLES
from ebm_ppl.diagnostics import Diagnostics
from ebm_ppl.diagnostics import html as pages

__all__ = ["write_page", "print_summary"]

_e = pages.escape


def _num(v, fmt=".4f") -> str:
    return "&ndash;" if v is None else format(v, fmt)


def _fmt(v, spec: str) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def _independent_bits_per_pixel(r: dict[str, Any]) -> float:
    return -r["log_likelihood"]["independent_pixels_test"] / (r["n_visible"] * math.log(2.0))


# -- report.html ------------------------------------------------------------------------------
def write_page(path: Path, s: dict[str, Any], paths: dict[str, Path], diags: dict[str, Diagnostics]) -> None:
    """Write ``report.html``: the RBM's log Z and likelihoods, the JEM, the two sampler runs (with
    their ``diags``), the figures of ``paths`` inline and links to the other files."""
    meta = (f"ebm_ppl {_e(s['ebm_ppl_version'])}, JAX {_e(s['jax_version'])} on {_e(s['backend'])}; seed {s['seed']}"
            + ("; <b>--fast</b> (tiny budgets: the numbers are not meaningful)" if s["fast"] else "")
            + f"; digits {s['data']['n_train']} train / {s['data']['n_val']} validation / "
            f"{s['data']['n_test']} test.")
    files = "<h2>Files</h2><ul>" + "".join(
        f"<li><a href=\"{_e(p.name)}\">{_e(p.name)}</a></li>" for n, p in paths.items() if n != "report") + "</ul>"
    sections = [*_rbm_section(s["rbm"], paths), *_jem_section(s["jem"], paths), *_sampler_sections(s, paths, diags),
                files]
    pages.write_page(path, pages.page("ebm-ppl quickstart", meta, sections))


def _rbm_section(r: dict[str, Any], paths: dict[str, Path]) -> list[str]:
    lz, sw, ll = r["log_z"], r["sandwich"], r["log_likelihood"]
    rows = [("exact (enumerating 2^%d hidden states)" % r["n_hidden"], _num(lz["exact"]), "&ndash;", "&ndash;",
             "exact", "&ndash;")]
    for key, label in (("forward_ais", "forward AIS"), ("reverse_ais", "reverse AIS from exact samples")):
        est = lz[key]
        rows.append((label, _num(est["log_z"]), "&plusmn; " + _num(est["stderr"]), _num(est["minus_exact"], "+.4f"),
                     est["bound"] + " bound in expectation", f"{est['weight_ess']:.1f} / {est['num_chains']}"))
    ll_rows = [
        ("RBM (exact log Z)", _num(ll["rbm_train"]), _num(ll["rbm_val"]), _num(ll["rbm_test"]),
         _num(r["test_bits_per_pixel"])),
        ("independent pixels (base rate)", _num(ll["independent_pixels_train"]), _num(ll["independent_pixels_val"]),
         _num(ll["independent_pixels_test"]), _num(_independent_bits_per_pixel(r))),
    ]
    return [
        "<h2>Bernoulli RBM: log Z and likelihood</h2>",
        f"<p class=\"note\">{r['n_visible']} &times; {r['n_hidden']} RBM on binarized digits, {_e(r['training'])}; "
        f"{r['epochs']} epochs, best epoch {r['best_epoch']} by validation log-likelihood. AIS: "
        f"{lz['forward_ais']['num_chains']} chains, {lz['forward_ais']['num_temperatures']} temperatures, "
        f"base fitted to the training images.</p>",
        pages.table(["estimate", "log Z (nats)", "s.e.", "minus exact", "kind", "weight ESS"],
                    [pages.row(c) for c in rows]),
        f"<p>Sandwich: log Z in [{_num(sw['log_z_lower'])} &plusmn; {_num(sw['stderr_lower'])}, "
        f"{_num(sw['log_z_upper'])} &plusmn; {_num(sw['stderr_upper'])}], gap {_num(sw['gap'], '+.4f')} "
        f"&plusmn; {_num(sw['gap_stderr'])} nats; the exact value is "
        f"{'inside' if sw['exact_inside'] else 'outside'} the bounds widened by two standard errors. "
        f"Mean test log-likelihood in [{_num(sw['test_log_likelihood_lower'])}, "
        f"{_num(sw['test_log_likelihood_upper'])}].</p>",
        pages.table(["model", "train LL", "validation LL", "test LL", "test bits/pixel"],
                    [pages.row(c) for c in ll_rows]),
        (f"<p>Test log-likelihood of the RBM minus that of independent pixels: "
         f"{_num(r['test_gain_over_independent_pixels'], '+.3f')} nats per image.</p>"),
        _png(paths["rbm_figure"], "RBM figure",
             "Filters (columns of W), samples after block Gibbs sweeps, samples of parallel tempering after as "
             "many sweeps (the beta = 1 replica), log-likelihood over epochs."),
        _tempering_note(r["tempering"]),
    ]


def _tempering_note(t: dict[str, Any]) -> str:
    return (f"<p>Parallel tempering: {t['num_replicas']} replicas per chain on a ladder adapted in warm-up "
            f"(betas {', '.join(f'{b:.3f}' for b in t['betas'])}); swap acceptance per neighbour pair "
            f"{', '.join(f'{a:.2f}' for a in t['swap_acceptance'])}; {t['round_trips_per_chain']:.1f} round trips "
            f"(bottom &rarr; top &rarr; bottom) per chain in {t['sweeps']} sweeps. A plain Gibbs chain of the "
            f"same length rarely leaves the mode it starts in (docs/parallel-tempering.md).</p>")


def _jem_section(j: dict[str, Any], paths: dict[str, Path]) -> list[str]:
    return [
        "<h2>JEM: classifier and energy</h2>",
        f"<p>{_e(j['architecture'])} classifier trained as a joint energy model (batch 64, Adamax 1e-3, "
        f"{j['settings']['langevin_steps']} short-run Langevin steps per batch, alpha {LANGEVIN_STEP:g}, "
        f"sigma {LANGEVIN_NOISE:g}); {j['epochs']} epochs, best epoch {j['best_epoch']}"
        + (" (loaded from an earlier run with the same settings)" if j["reused"] else "")
        + f". <b>Test accuracy {j['test_accuracy']:.4f}</b>"
        + (f" (best validation accuracy {j['best_val_accuracy']:.4f})" if j["best_val_accuracy"] is not None else "")
        + ".</p>",
        _png(paths["jem_figure"], "JEM figure (chapter Fig. 6.2)",
             "Real digits; samples after 20 Langevin steps from uniform noise; validation curves of "
             "L_clf + L_gen and of L_gen."),
        *_jem_box_section(j["box"]),
    ]


def _jem_box_section(b: dict[str, Any]) -> list[str]:
    f, rv = b["forward"], b["reverse"]
    return [
        "<h3>The JEM as a density: log-likelihood on the box [-1, 1]^64</h3>",
        "<p class=\"note\">On R^64 the JEM's marginal exp(-E(x)) need not be normalizable; restricted to "
        f"the digits' range {_e(b['support'])} it is a proper density. Its log Z by annealed importance "
        f"sampling ({b['num_chains']} chains, {b['num_temperatures']} temperatures, on the unconstrained "
        "space): forward from N(0, I) (a lower bound in expectation), reverse from test images (an "
        "approximate upper bound; RAISE's per-image estimate is conservative).</p>",
        pages.table(["estimate", "log Z (nats)", "s.e.", "weight ESS"], [
            pages.row(("forward AIS (lower)", _num(f["log_z"]), _num(f["stderr"]), f"{f['weight_ess']:.1f}")),
            pages.row((f"reverse AIS ({rv['bound']})", _num(rv["log_z"]), _num(rv["stderr"]),
                       f"{rv['weight_ess']:.1f}")),
        ]),
        f"<p><b>Mean test log-likelihood of the JEM: between {_num(b['test_log_likelihood_raise'])} "
        f"&plusmn; {_num(b['test_log_likelihood_raise_stderr'])} (RAISE, conservative) and "
        f"{_num(b['test_log_likelihood_upper'])} &plusmn; {_num(b['test_log_likelihood_upper_stderr'])} "
        f"(from the forward bound) nats per image</b>; the uniform density on the box gives "
        f"{_num(b['uniform_on_box'])}.</p>",
    ]


def _sampler_sections(s: dict[str, Any], paths: dict[str, Path], diags: dict[str, Diagnostics]) -> list[str]:
    parts = [
        "<h2>Sampling the JEM's marginal energy</h2>",
        "<p class=\"note\">E(x) = -logsumexp_y f(x)[y]. MALA targets p(x) &prop; exp(-E(x)) (T = 1) on R^64, "
        "where it need not be normalizable; NUTS targets the same density restricted to the box [-1, 1]^64, "
        "where it is (sampled on the unconstrained space through a bijection, draws back in the box). "
        f"The chapter's Langevin x' = x + {LANGEVIN_STEP:g} &nabla;log p(x) + {LANGEVIN_NOISE:g} &xi; has "
        f"noise variance {LANGEVIN_NOISE ** 2:g} instead of the 2 &alpha; = {2 * LANGEVIN_STEP:g} of exact "
        f"Langevin, so it is Langevin dynamics of exp(-E(x)/T) with T = &sigma;&sup2;/(2&alpha;) = "
        f"{LANGEVIN_TEMPERATURE:.0e}: a tempered, nearly deterministic descent, not a sampler of p(x).</p>",
    ]
    for name, d in s["samplers"].items():
        report_link = paths[f"{name}_report"].name
        parts.append(
            f"<h3>{_e(SAMPLER_TITLES[name])}</h3>"
            f"<p class=\"meta\">{d['num_chains']} chains &times; {d['num_draws']} draws after "
            f"{s['budget']['sample_warmup']} warm-up steps, from uniform noise on [-1, 1]; {d['seconds']:.1f} s"
            + (f"; mean acceptance {d['acceptance_rate']:.3f}" if d["acceptance_rate"] is not None else "")
            + (f"; step size {d['step_size']:.3g}" if "step_size" in d else "")
            + f"; max |x| {d['max_abs_x']:.3g}, {100 * d['fraction_outside_data_range']:.1f}% of pixel values "
            f"outside [-1, 1]; mean energy of the draws {d['energy_mean']:.4g} (test digits: "
            f"{s['jem']['test_energy_mean']:.4g}).</p>"
            f"<p>Verdict: <span class=\"{'ok' if d['ok'] else 'warn'}\">{_e(d['verdict'])}</span>. "
            f"Full report with ArviZ's trace, rank, ESS and autocorrelation plots: "
            f"<a href=\"{_e(report_link)}\">{_e(report_link)}</a></p>"
            + _diagnostics_table(diags[name])
            + _png(paths[f"{name}_samples"], f"{name} draws", "Rows: chains; columns: draws evenly spaced over the run.")
        )
    return parts


def _diagnostics_table(diag: Diagnostics, worst: int = 8) -> str:
    """The lp row and the ``worst`` worst-mixing coordinates, with a caption."""
    rows = ([diag.lp] if diag.lp is not None else []) + diag.worst[:worst]
    caption = (f"<p class=\"note\">lp (log density) and the {min(worst, len(diag.worst))} worst-mixing of "
               f"{len(diag.coordinates)} coordinates (arviz R-hat, bulk/tail ESS, MCSE; thresholds R-hat &lt; "
               f"{diag.rhat_threshold:g}, ESS &ge; {diag.min_ess:g}).</p>")
    return caption + pages.diagnostics_table([pages.diagnostics_row(r) for r in rows])


def _png(path: Path, alt: str, caption: str) -> str:
    return pages.png_figure(path.read_bytes(), alt, caption)


# -- the printed summary ----------------------------------------------------------------------
def print_summary(s: dict[str, Any], reused: Path | None, paths: dict[str, Path], out: Path, quiet: bool) -> None:
    """Print the results, the stage times, the files and (unless ``quiet``) the next steps."""
    print(f"ebm-ppl quickstart on the digits ({s['data']['n_train']} train / {s['data']['n_val']} validation / "
          f"{s['data']['n_test']} test), seed {s['seed']}, {s['backend']}"
          + (" -- --fast: tiny budgets, numbers not meaningful" if s["fast"] else ""))
    print()
    _print_rbm(s["rbm"])
    print()
    j = s["jem"]
    how = f"loaded from {reused} (same settings; --retrain to train again)" if reused else \
        f"{j['epochs']} epochs, best epoch {j['best_epoch']}"
    print(f"JEM {j['architecture']}, short-run Langevin ({j['settings']['langevin_steps']} steps): {how}")
    if j["stopped"] == "diverged":
        print(f"  training DIVERGED ({j['stopped_message']}); the last good model is used")
    print(f"  test accuracy {j['test_accuracy']:.4f}"
          + (f" (best validation accuracy {j['best_val_accuracy']:.4f})" if j["best_val_accuracy"] is not None else ""))
    b = j["box"]
    print(f"  on the box {b['support']} (a proper density), AIS log Z: forward {b['forward']['log_z']:.3f} ± "
          f"{b['forward']['stderr']:.3f}, reverse from test images {b['reverse']['log_z']:.3f} ± "
          f"{b['reverse']['stderr']:.3f} ({b['num_chains']} chains x {b['num_temperatures']} temperatures)")
    print(f"  test log-likelihood between {b['test_log_likelihood_raise']:.2f} (RAISE, conservative) and "
          f"{b['test_log_likelihood_upper']:.2f} nats/image (uniform on the box: {b['uniform_on_box']:.2f})")
    print()
    _print_samplers(s)
    print()
    times = s["stage_seconds"]
    width = max(len(k) for k in times)
    print("Stage times:")
    for label, seconds in times.items():
        print(f"  {label.ljust(width)}  {seconds:6.1f} s")
    print()
    print(f"Saved to {out}/:")
    for name in ("report", "summary", "rbm", "base_rate", "rbm_figure", "jem", "jem_figure", "mala_report",
                 "langevin_report", "nuts_box_report", "mala_samples", "langevin_samples", "nuts_box_samples"):
        print(f"  {paths[name]}")
    if not quiet:
        print_hints(f"Open {paths['report']} in a browser. Next steps:", _hints(paths, out))


def _print_rbm(r: dict[str, Any]) -> None:
    lz, sw, ll = r["log_z"], r["sandwich"], r["log_likelihood"]
    print(f"Bernoulli RBM {r['n_visible']}x{r['n_hidden']}, PCD-1: {r['epochs']} epochs, best epoch {r['best_epoch']}")
    rows = [["exact", f"{lz['exact']:.4f}", "", "", f"enumerating 2^{r['n_hidden']} hidden states"]]
    for key, label in (("forward_ais", "forward AIS"), ("reverse_ais", "reverse AIS")):
        est = lz[key]
        rows.append([label, f"{est['log_z']:.4f}", f"± {est['stderr']:.4f}", f"{est['minus_exact']:+.4f}",
                     f"{est['bound']} bound; {est['num_chains']} chains x {est['num_temperatures']} "
                     f"temperatures, ESS {est['weight_ess']:.0f}"])
    rows.append(["sandwich gap", f"{sw['gap']:+.4f}", f"± {sw['gap_stderr']:.4f}", "",
                 "exact inside" if sw["exact_inside"] else "exact OUTSIDE (runs too short)"])
    print(format_table(["  log Z", "nats", "s.e.", "- exact", ""], [["  " + c[0], *c[1:]] for c in rows]))
    print(format_table(["  test log-likelihood", "nats/image", "bits/pixel"], [
        ["  RBM (exact log Z)", f"{ll['rbm_test']:.3f}", f"{r['test_bits_per_pixel']:.4f}"],
        ["  independent pixels", f"{ll['independent_pixels_test']:.3f}", f"{_independent_bits_per_pixel(r):.4f}"],
    ]))
    t = r["tempering"]
    print(f"  parallel tempering: {t['num_replicas']} replicas, swap acceptance >= {t['min_swap_acceptance']:.2f}, "
          f"{t['round_trips_per_chain']:.1f} round trips per chain in {t['sweeps']} sweeps")


def _print_samplers(s: dict[str, Any]) -> None:
    first = next(iter(s["samplers"].values()))
    print(f"Sampling the JEM's marginal energy: {first['num_chains']} chains x {first['num_draws']} draws after "
          f"{s['budget']['sample_warmup']} warm-up steps, from uniform noise on [-1, 1]")
    labels = {"mala": "MALA (T = 1)", "langevin": f"Langevin (T = {LANGEVIN_TEMPERATURE:.0e})",
              "nuts_box": "NUTS on [-1, 1]^64 (T = 1)"}
    rows = [["  " + labels[name],
             _fmt(d["max_rhat"], ".3f"), _fmt(d["min_ess"], ".0f"), _fmt(d["lp_rhat"], ".3f"),
             _fmt(d["lp_ess_bulk"], ".0f"), _fmt(d["acceptance_rate"], ".3f"), f"{d['max_abs_x']:.3g}",
             "ok" if d["ok"] else "WARN"] for name, d in s["samplers"].items()]
    print(format_table(["  sampler", "max R-hat", "min ESS", "lp R-hat", "lp ESS", "accept", "max |x|", "verdict"],
                       rows))
    print(f"  Langevin here is the chapter's: x' = x + {LANGEVIN_STEP:g} grad log p(x) + {LANGEVIN_NOISE:g} xi. "
          f"Exact Langevin needs noise variance 2 x {LANGEVIN_STEP:g};")
    print(f"  this is Langevin dynamics of exp(-E(x)/T) with T = sigma^2/(2 alpha) = {LANGEVIN_TEMPERATURE:.0e}, "
          "a tempered, nearly deterministic descent, not a sampler of p(x).")
    mala = s["samplers"].get("mala")
    if mala is not None and mala["fraction_outside_data_range"] > 0.05:
        print(f"  MALA at T = 1 leaves the data's range ({100 * mala['fraction_outside_data_range']:.0f}% of pixel "
              f"values outside [-1, 1], max |x| {mala['max_abs_x']:.3g}; mean energy {mala['energy_mean']:.4g} there,")
        print(f"  {s['jem']['test_energy_mean']:.4g} on the test digits): exp(-E(x)) puts its mass far from the "
              "digits; the JEM's marginal need not be normalizable.")


def _hints(paths: dict[str, Path], out: Path) -> list[tuple[str, str]]:
    rbm_file, jem_file = shlex.quote(str(paths["rbm"])), shlex.quote(str(paths["jem"]))
    return [
        (f"{PROG} sample {rbm_file} --out {shlex.quote(str(out / 'rbm_samples'))}", "block Gibbs draws of the RBM"),
        (f"{PROG} report {shlex.quote(str(out / 'rbm_samples'))}", "their HTML report"),
        (f"{PROG} sample {jem_file} --kernel nuts --out {shlex.quote(str(out / 'jem_nuts'))}",
         "NUTS on the JEM's energy"),
        (f"{PROG} logz {rbm_file} --reverse --data digits --temperatures 30000", "a longer AIS sandwich"),
        (f"{PROG} train jem --epochs 60 --out {shlex.quote(str(out / 'jem60'))}", "a longer JEM run, checkpointed"),
        (f"{PROG} train rbm --hidden 20 --epochs 100 --out {shlex.quote(str(out / 'rbm20'))}", "a wider RBM"),
    ]
