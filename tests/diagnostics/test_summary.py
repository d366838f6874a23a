"""diagnose(): ArviZ's R-hat / ESS / MCSE per quantity, flags, and the printed table.

The exact answers compared with are ArviZ's own functions on the same DataTree (the module only
rearranges them), so those comparisons are to floating-point round-off. The flag tests use draws
whose answer is known by construction: iid N(0, 1) chains (R-hat - 1 is O(1/N), ESS ~ N, far from
the 1.01 / 400 thresholds at N = 4 x 1000 with a fixed seed), a chain shifted by 3 sd (R-hat
about 1.5, far above 1.01), and 0/1 pixels: one never on in any chain (constant and agreed: no
warning) against one stuck on in one chain while the others flip fair coins (R-hat about 1.1).
"""

import json
import math
import warnings

import arviz as az
import numpy as np
import pytest

from ebm_ppl.diagnostics import Diagnostics, diagnose


def _iid(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def _row(diag, quantity):
    return next(r for r in diag.table if r["quantity"] == quantity)


def test_iid_chains_are_ok(make_data):
    diag = diagnose(make_data(_iid((4, 1000, 3))))
    assert isinstance(diag, Diagnostics)
    assert (diag.num_chains, diag.num_draws) == (4, 1000)
    assert [r["quantity"] for r in diag.table] == ["lp", "x[0]", "x[1]", "x[2]"]
    assert all(r["flag"] == "ok" and r["note"] == "" for r in diag.table)
    assert diag.ok
    assert diag.verdict() == "ok"
    assert "verdict: ok" in str(diag)


def test_shifted_chain_is_flagged_by_rhat(make_data):
    x = _iid((4, 1000, 2))
    x[3, :, 0] += 3.0  # one chain in the wrong place: between-chain variance >> within
    diag = diagnose(make_data(x))
    bad, good = _row(diag, "x[0]"), _row(diag, "x[1]")
    assert bad["rhat"] > 1.1
    assert bad["flag"] == "warn" and "R-hat" in bad["note"]
    assert good["flag"] == "ok"
    assert diag.worst[0]["quantity"] == "x[0]"
    assert not diag.ok
    assert "WARN" in diag.verdict()


def test_stuck_chain_is_flagged(make_data):
    x = _iid((4, 1000, 2))
    x[1, :, 1] = x[1, 0, 1]  # one chain never moves in coordinate 1
    diag = diagnose(make_data(x))
    row = _row(diag, "x[1]")
    assert row["flag"] == "warn"
    assert "constant in 1 of 4 chains" in row["note"]


def test_values_agree_with_arviz(make_data):
    x = _iid((4, 500, 3), seed=1)
    x[:, :, 2] = np.cumsum(x[:, :, 2], axis=1) * 0.1  # an autocorrelated coordinate too
    lp = _iid((4, 500), seed=2)
    data = make_data(x, lp)
    diag = diagnose(data)
    expected = {
        "rhat": az.rhat(data)["x"].values,
        "ess_bulk": az.ess(data, method="bulk")["x"].values,
        "ess_tail": az.ess(data, method="tail")["x"].values,
        "mcse_mean": az.mcse(data, method="mean")["x"].values,
        "mean": x.mean(axis=(0, 1)),
        "sd": x.reshape(-1, 3).std(axis=0, ddof=1),
    }
    for i in range(3):
        row = _row(diag, f"x[{i}]")
        for column, values in expected.items():
            np.testing.assert_allclose(row[column], values[i], rtol=1e-12, err_msg=column)
    e = _row(diag, "lp")
    np.testing.assert_allclose(e["rhat"], float(az.rhat(data, group="sample_stats", var_names=["lp"])["lp"]),
                               rtol=1e-12)
    np.testing.assert_allclose(e["ess_bulk"], float(az.ess(data, group="sample_stats", var_names=["lp"])["lp"]),
                               rtol=1e-12)
    np.testing.assert_allclose(e["mean"], lp.mean(), rtol=1e-12)


def test_constant_agreed_coordinate_is_not_a_warning(make_data):
    x = _iid((4, 400, 3))
    x[:, :, 1] = 1.0  # the same value in every draw of every chain
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from 0/0 inside R-hat either
        diag = diagnose(make_data(x))
        text = str(diag)
    row = _row(diag, "x[1]")
    assert row["flag"] == "ok" and row["note"] == "constant (agreed)"
    assert math.isnan(row["rhat"]) and math.isnan(row["ess_bulk"]) and math.isnan(row["ess_tail"])
    assert row["mean"] == 1.0 and row["sd"] == 0.0
    assert diag.constant == ["x[1]"] and diag.flagged == []
    assert diag.ok and diag.verdict() == "ok"
    assert "constant (agreed)" in text
    assert [r["quantity"] for r in diag.worst][-1] == "x[1]"  # after every coordinate that moves
    json.dumps(diag.to_dict(), allow_nan=False)


def test_never_on_pixel_passes_while_a_stuck_chain_fails(make_data):
    """0/1 pixels, 4 chains x 1000 draws: pixel 0 is never on anywhere (passes); in pixel 1 chain 2
    is stuck on while the others flip fair coins: R-hat sqrt((W (n-1)/n + B/n) / W) with W = 3/16
    and B/n = 1/16 is about sqrt(4/3) = 1.15 (ArviZ's rank-normalised split R-hat: 1.13), far above
    1.01, so it fails."""
    rng = np.random.default_rng(5)
    x = (rng.random((4, 1000, 3)) < 0.5).astype(float)
    x[:, :, 0] = 0.0
    x[2, :, 1] = 1.0
    lp = _iid((4, 1000), seed=7)  # a well-mixed lp, so that only the pixels are judged
    diag = diagnose(make_data(x, lp))
    never, stuck = _row(diag, "x[0]"), _row(diag, "x[1]")
    assert never["flag"] == "ok" and never["note"] == "constant (agreed)"
    assert stuck["flag"] == "warn" and stuck["rhat"] > 1.1
    assert "constant in 1 of 4 chains" in stuck["note"]
    assert _row(diag, "x[2]")["flag"] == "ok"
    assert not diag.ok and diag.verdict() == "WARN: 1 of 4 quantities flagged"
    x[2, :, 1] = rng.random(1000) < 0.5  # unstuck: the never-on pixel alone leaves the run ok
    assert diagnose(make_data(x, lp)).ok


def test_chains_frozen_at_different_values(make_data):
    x = np.zeros((4, 300, 1))
    x[2:] = 1.0  # every chain constant, two at 0 and two at 1: R-hat explodes, not NaN
    diag = diagnose(make_data(x, lp=_iid((4, 300))))
    row = _row(diag, "x[0]")
    assert row["flag"] == "warn"
    assert "R-hat" in row["note"] and "constant in 4 of 4 chains" in row["note"]


def test_high_dimensional_prints_flagged_rows_only(make_data):
    rng = np.random.default_rng(3)
    x = (rng.random((4, 400, 64)) < 0.5).astype(float)
    x[0, :, [5, 17, 42]] = 1.0  # chain 0 stuck at 1 on three pixels: the worst R-hats
    x[:, :, 60] = 0.0  # a pixel that is never on: constant (agreed), not flagged
    diag = diagnose(make_data(x), max_rows=5)
    text = str(diag)
    lines = text.splitlines()
    flagged = [r for r in diag.coordinates if r["flag"] != "ok"]
    coordinate_lines = [line for line in lines if line.startswith("x[")]
    assert len(coordinate_lines) == min(5, len(flagged))  # only flagged rows, worst first
    assert [line.split()[0] for line in coordinate_lines] == [r["quantity"] for r in flagged[:5]] or \
        [line.split()[0] for line in coordinate_lines] == [r["quantity"] for r in diag.worst[:len(coordinate_lines)]]
    assert {r["quantity"] for r in diag.worst[:3]} == {"x[5]", "x[17]", "x[42]"}
    assert all("warn" in line for line in coordinate_lines)
    assert diag.worst[-1]["quantity"] == "x[60]" and diag.constant == ["x[60]"]
    assert any(line.startswith("lp") for line in lines)
    summary = next(line for line in lines if line.startswith("x (64 coordinates)"))
    assert "max R-hat" in summary and "min ESS bulk" in summary and "min ESS tail" in summary
    assert f"{len(flagged)} flagged, 1 constant (agreed)" in summary
    rest = f"{64 - len(flagged)} of 64 coordinates ok (1 constant (agreed))"
    assert rest in text
    if len(flagged) > 5:
        assert f"{len(flagged) - 5} more flagged not listed" in text
    assert len(diag.table) == 65  # the table itself keeps every coordinate


def test_all_ok_high_dimensional_run_lists_no_coordinate(make_data):
    x = (np.random.default_rng(6).random((4, 1000, 30)) < 0.5).astype(float)
    x[:, :, :3] = 0.0  # three never-on pixels
    diag = diagnose(make_data(x), max_rows=10)
    text = str(diag)
    assert diag.ok, text
    assert not [line for line in text.splitlines() if line.startswith("x[")]
    assert "30 of 30 coordinates ok (3 constant (agreed))" in text and "verdict: ok" in text


def test_low_dimensional_prints_every_row_in_order(make_data):
    diag = diagnose(make_data(_iid((4, 200, 3))), max_rows=5)
    names = [line.split()[0] for line in str(diag).splitlines() if line.startswith("x[")]
    assert names == ["x[0]", "x[1]", "x[2]"]
    assert "worst" not in str(diag)


def test_thresholds_are_arguments(make_data):
    data = make_data(_iid((4, 500, 2)))
    assert not diagnose(data, min_ess_per_chain=10_000).ok  # ESS ~ 2000 < 40000
    x = _iid((4, 500, 2))
    x[3, :, 0] += 3.0
    loose = diagnose(make_data(x), rhat_threshold=10.0, min_ess_per_chain=0)
    assert _row(loose, "x[0]")["flag"] == "ok"
    assert loose.min_ess == 0 and loose.rhat_threshold == 10.0


def test_acceptance_rate_and_divergences(make_data):
    rng = np.random.default_rng(4)
    acc = rng.uniform(0.6, 0.9, size=(4, 500))
    div = np.zeros((4, 500), bool)
    div[2, [10, 20, 30]] = True
    diag = diagnose(make_data(_iid((4, 500, 2)), acceptance_rate=acc, diverging=div))
    np.testing.assert_allclose(diag.acceptance_rate, acc.mean(axis=1), rtol=1e-12)
    assert diag.num_divergent == 3 and diag.divergent_per_chain == (0, 0, 3, 0)
    assert all(r["flag"] == "ok" for r in diag.table)
    assert not diag.ok  # divergences alone make the run suspect
    text = str(diag)
    assert "acceptance rate per chain" in text and "divergences: 3" in text
    plain = diagnose(make_data(_iid((4, 500, 2))))
    assert plain.acceptance_rate is None and plain.num_divergent is None


def test_to_dict_is_json(make_data):
    x = _iid((4, 300, 2))
    x[:, :, 0] = 0.0
    d = diagnose(make_data(x)).to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert back["num_chains"] == 4 and back["num_draws"] == 300
    assert back["table"][1]["quantity"] == "x[0]" and back["table"][1]["rhat"] is None
    assert back["worst"][-1] == "x[0]" and back["constant"] == ["x[0]"]  # constant (agreed): last, ok
    assert back["table"][1]["flag"] == "ok" and back["ok"] is True and back["bfmi"] is None
    assert set(back["table"][0]) >= {"quantity", "mean", "sd", "mcse_mean", "ess_bulk", "ess_tail", "rhat", "flag"}


def test_multi_dimensional_event_labels(make_data):
    diag = diagnose(make_data(_iid((2, 100, 2, 3))))
    assert [r["quantity"] for r in diag.coordinates] == [f"x[{i},{j}]" for i in range(2) for j in range(3)]


def test_real_run(rbm_run):
    diag = diagnose(rbm_run)
    assert diag.kernel == "block_gibbs" and diag.potential == "bernoulli_rbm"
    assert (diag.num_chains, diag.num_draws) == (4, 200)
    assert len(diag.table) == 65 and diag.table[0]["quantity"] == "lp"
    assert len(str(diag).splitlines()) < 40


def test_bad_input(make_data):
    with pytest.raises(TypeError, match="DataTree"):
        diagnose(np.zeros((4, 100)))
    with pytest.raises(ValueError, match="posterior"):
        diagnose(az.from_dict({"sample_stats": {"energy": np.zeros((4, 100))}}))
    with pytest.raises(ValueError, match="max_rows"):
        diagnose(make_data(_iid((4, 100, 2))), max_rows=0)


def test_malformed_draws_are_refused_naming_what_is_wrong():
    """Draws without a chain dimension were 'no numeric variables'; complex draws failed inside
    scipy; a diverging count of -1 was summed into the report."""
    import xarray as xr

    one_chain = xr.DataTree.from_dict({"posterior": xr.Dataset({"mu": (("draw",), np.zeros(500))})})
    with pytest.raises(ValueError, match=r"no posterior variable has both 'chain' and 'draw'.*mu \('draw',\)"):
        diagnose(one_chain)
    with pytest.raises(ValueError, match=r"\['mu'\] are complex"):
        diagnose(az.from_dict({"posterior": {"mu": _iid((4, 100)) + 1j}}))
    counts = az.from_dict({"posterior": {"mu": _iid((4, 100))}, "sample_stats": {"diverging": np.full((4, 100), -1)}})
    with pytest.raises(ValueError, match=r"diverging must be booleans \(or 0/1\).*\[-1\]"):
        diagnose(counts)
    zero_one = az.from_dict({"posterior": {"mu": _iid((4, 100))},
                             "sample_stats": {"diverging": np.eye(4, 100, dtype=int)}})
    assert diagnose(zero_one).num_divergent == 4
