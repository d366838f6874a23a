"""ebm_ppl.training.checkpoint: bit-exact round trips of training states, files written before the
archive refactor, and refusal of damaged, altered or mismatched checkpoints (NaN values included)."""

from __future__ import annotations

import io
import json
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ebm_ppl as ep
from ebm_ppl.training.checkpoint import META, load_checkpoint, read_checkpoint_metadata, save_checkpoint


def _state(key_impl="threefry2x32"):
    """A training-like state: parameters, an Adam state (float moments, int32 count), a PRNG key,
    a Python int and an optax reduce_on_plateau state, whose best_value starts at +inf."""
    params = {"W": jnp.arange(12.0).reshape(3, 4) / 7, "b": jnp.asarray([-0.0, 1.5, -2.25])}
    return {"params": params, "opt": optax.adam(1e-2).init(params),
            "key": jax.random.key(3, impl=key_impl), "step": 7,
            "plateau": optax.contrib.reduce_on_plateau().init(params)}


def _index(where: str) -> int:
    """The leaf number of the leaf at ``where`` (a keystr) in ``_state()``."""
    return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(_state())[0]].index(where)


def _bits(tree):
    leaves = [jax.random.key_data(x) if isinstance(x, jax.Array) and jax.dtypes.issubdtype(
        x.dtype, jax.dtypes.prng_key) else x for x in jax.tree.leaves(tree)]
    return [(jnp.asarray(x).dtype, np.asarray(x).tobytes()) for x in map(jnp.asarray, leaves)]  # Python ints: int32


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _rewrite(path, members=None, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path) as zf:
        contents = {name: zf.read(name) for name in zf.namelist()}
    contents.update(members or {})
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in contents.items():
            zf.writestr(name, data)


META_IN = {"epoch": 4, "records": [{"loss": float("nan")}, {"loss": 0.5}], "monitor": "val_é"}


def test_round_trip_bit_exact(tmp_path):
    state = _state()
    assert float(state["plateau"].best_value) == np.inf  # the legitimate infinity this test covers
    save_checkpoint(tmp_path / "c.ckpt", state, META_IN)
    restored, meta = load_checkpoint(tmp_path / "c.ckpt", _state())
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    assert _bits(restored) == _bits(state)
    assert jax.random.key_impl(restored["key"]) == jax.random.key_impl(state["key"])
    assert meta["epoch"] == 4 and meta["monitor"] == "val_é" and np.isnan(meta["records"][0]["loss"])
    assert meta["num_leaves"] == len(jax.tree.leaves(state)) and meta["key_impls"] == {"0": "threefry2x32"}
    assert read_checkpoint_metadata(tmp_path / "c.ckpt") == meta


def test_layout_and_a_file_written_by_the_old_writer(tmp_path):
    """The writer before ebm_ppl.archive used ``ZipFile.writestr`` (current date) and
    ``json.dumps(..., allow_nan=True)``; such a file loads, and a new file has the same members."""
    state = _state()
    save_checkpoint(tmp_path / "new.ckpt", state, META_IN)
    leaves = jax.tree.leaves(state)
    old = tmp_path / "old.ckpt"
    with zipfile.ZipFile(old, "w", compression=zipfile.ZIP_STORED) as zf:
        for i, leaf in enumerate(leaves):
            arr = np.asarray(jax.random.key_data(leaf) if i == _index("['key']") else leaf)
            zf.writestr(f"leaves/{i}.npy", _npy(arr))
        zf.writestr(META, json.dumps(dict(META_IN, num_leaves=len(leaves), key_impls={"0": "threefry2x32"})))
    with zipfile.ZipFile(old) as a, zipfile.ZipFile(tmp_path / "new.ckpt") as b:
        assert a.namelist() == b.namelist()
        assert all(a.read(n) == b.read(n) for n in a.namelist() if n != META)
        assert json.loads(a.read(META)).keys() == json.loads(b.read(META)).keys()
    restored, _ = load_checkpoint(old, _state())
    assert _bits(restored) == _bits(state)


def test_nan_parameter_refused_on_load_naming_leaf_and_file(tmp_path):
    """A damaged or tampered checkpoint with a NaN weight must not resume as a NaN model."""
    path = tmp_path / "c.ckpt"
    save_checkpoint(path, _state(), META_IN)
    W = np.asarray(_state()["params"]["W"]).copy()
    W[0, 1] = np.nan
    index = _index("['params']['W']")
    _rewrite(path, {f"leaves/{index}.npy": _npy(W)})
    with pytest.raises(ValueError, match=rf"checkpoint '{path}': array {index} \['params'\]\['W'\] contains 1 NaN"):
        load_checkpoint(path, _state())


def test_infinity_refused_where_the_template_is_finite(tmp_path):
    path = tmp_path / "c.ckpt"
    state = _state()
    save_checkpoint(path, state, META_IN)
    i = _index("['params']['b']")
    _rewrite(path, {f"leaves/{i}.npy": _npy(np.asarray([np.inf, 0, 0], np.float32))})
    with pytest.raises(ValueError, match=rf"array {i} .*1 infinite value\(s\), where this run's own state holds none"):
        load_checkpoint(path, state)


def test_save_refuses_nan(tmp_path):
    state = _state()
    state["params"]["b"] = state["params"]["b"].at[0].set(jnp.nan)
    with pytest.raises(ValueError, match=r"array \d+ \['params'\]\['b'\] contains 1 NaN"):
        save_checkpoint(tmp_path / "c.ckpt", state, META_IN)
    assert list(tmp_path.iterdir()) == []


def test_other_settings_refused(tmp_path):
    path = tmp_path / "c.ckpt"
    save_checkpoint(path, _state(), META_IN)
    wider = _state()
    wider["params"]["W"] = jnp.zeros((3, 5))
    with pytest.raises(ValueError, match=r"has shape \(3, 4\), expected \(3, 5\); it was written with other settings"):
        load_checkpoint(path, wider)
    with pytest.raises(ValueError, match="holds 15 arrays, this training run has 2"):
        load_checkpoint(path, {"a": jnp.zeros(2), "b": jnp.zeros(2)})
    with pytest.raises(ValueError, match="resume with prng_impl='threefry2x32'"):
        load_checkpoint(path, _state(ep.random.philox2x32_64))


def test_compressed_member_refused(tmp_path):
    path = tmp_path / "c.ckpt"
    save_checkpoint(path, _state(), META_IN)
    _rewrite(path, compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError, match="member 'leaves/0.npy' is compressed"):
        load_checkpoint(path, _state())


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\x80\x04K\x01.", "Python pickle"), (b"", "not an ebm_ppl checkpoint"), (None, "no such checkpoint")],
)
def test_not_a_checkpoint(tmp_path, content, message):
    path = tmp_path / "c.ckpt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_checkpoint_metadata(path)
    with pytest.raises(FileNotFoundError if content is None else ValueError, match=message):
        load_checkpoint(path, _state())
