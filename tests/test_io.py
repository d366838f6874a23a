"""ebm_ppl.io: bit-exact round trips for every family, and refusal of unsafe or damaged files.

Round trips are compared bit for bit (``numpy.array_equal`` plus dtype equality on every array
leaf) because ``save`` stores the exact bytes; energies on a fixed input must then agree exactly
too, since the same computation runs on the same parameters.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import zipfile
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.lib import format as npy_format

import ebm_ppl as ep
from ebm_ppl import io as ebm_io
from ebm_ppl.potentials.base import Potential, Support
from ebm_ppl.potentials import registry


# -- helpers -----------------------------------------------------------------------------------
def _gaussian_full(key, dtype):
    k1, k2 = jax.random.split(key)
    A = jax.random.normal(k1, (4, 4), dtype)
    return ep.Gaussian(jax.random.normal(k2, (4,), dtype), cov=A @ A.T + 4 * jnp.eye(4, dtype=dtype))


def _gaussian_diag(key, dtype):
    k1, k2 = jax.random.split(key)
    return ep.Gaussian(jax.random.normal(k1, (3,), dtype), scale_diag=jnp.exp(jax.random.normal(k2, (3,), dtype)))


def _boltzmann(key, dtype):
    k1, k2 = jax.random.split(key)
    upper = jnp.triu(jax.random.normal(k1, (5, 5), dtype), 1)
    return ep.BoltzmannMachine(upper + upper.T, jax.random.normal(k2, (5,), dtype))


def _bernoulli_rbm(key, dtype):
    k1, k2, k3 = jax.random.split(key, 3)
    return ep.BernoulliRBM(
        jax.random.normal(k1, (6, 4), dtype), jax.random.normal(k2, (6,), dtype), jax.random.normal(k3, (4,), dtype)
    )


FAMILIES = {
    "gaussian_full": _gaussian_full,
    "gaussian_diag": _gaussian_diag,
    "boltzmann": _boltzmann,
    "bernoulli_rbm": _bernoulli_rbm,
    "gaussian_bernoulli_rbm": lambda key, dtype: ep.GaussianBernoulliRBM.init(key, 6, 4),
    "subspace_rbm": lambda key, dtype: ep.SubspaceRBM.init(key, 6, 3, 2),
    "jem": lambda key, dtype: ep.JEM.init(key, in_features=8, num_classes=3, width=16, depth=2),
}
FLOAT64_FAMILIES = ["gaussian_full", "gaussian_diag", "boltzmann", "bernoulli_rbm"]


def _leaves(potential):
    params = eqx.filter(potential, eqx.is_array)
    return [(jax.tree_util.keystr(p), np.asarray(leaf)) for p, leaf in jax.tree_util.tree_flatten_with_path(params)[0]]


def _assert_bit_identical(a, b):
    assert type(a) is type(b)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    la, lb = _leaves(a), _leaves(b)
    assert [k for k, _ in la] == [k for k, _ in lb]
    assert la, "a potential with no array leaves proves nothing"
    for (key, x), (_, y) in zip(la, lb):
        assert x.dtype == y.dtype, key
        assert x.shape == y.shape, key
        assert np.array_equal(x, y), key
        assert x.tobytes() == y.tobytes(), key  # bits, including the sign of zeros


def _some_input(potential, key):
    shape = (5, *potential.event_shape)
    dtype = _leaves(potential)[0][1].dtype
    if potential.support == Support.BINARY:
        return jax.random.bernoulli(key, 0.5, shape).astype(dtype)
    return jax.random.normal(key, shape, dtype)


def _roundtrip(tmp_path, potential, **load_kwargs):
    path = tmp_path / "model.ebm"
    ep.save(path, potential)
    return path, ep.load(path, **load_kwargs)


def _rewrite(path, *, members=None, edit_meta=None, drop=(), compression=zipfile.ZIP_STORED):
    """Rewrite the zip at ``path``: replace member bytes, edit metadata.json, drop members."""
    members = members or {}
    with zipfile.ZipFile(path) as zf:
        contents = {name: zf.read(name) for name in zf.namelist()}
    contents.update(members)
    if edit_meta is not None:
        meta = json.loads(contents["metadata.json"])
        edit_meta(meta)
        contents["metadata.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in contents.items():
            if name not in drop:
                zf.writestr(name, data)


def _npy_bytes(arr, allow_pickle=False):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


class _Evil:
    """Unpickling this runs code that creates ``self.sentinel`` (a stand-in for an exploit)."""

    def __init__(self, sentinel):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (exec, (f"open({self.sentinel!r}, 'w').write('pwned')",))


@pytest.fixture
def saved(tmp_path):
    rbm = _bernoulli_rbm(jax.random.key(0), jnp.float32)
    path = tmp_path / "rbm.ebm"
    ep.save(path, rbm)
    return path, rbm


# -- round trips -------------------------------------------------------------------------------
@pytest.mark.parametrize("family", list(FAMILIES))
def test_roundtrip_bit_exact(tmp_path, family):
    potential = FAMILIES[family](jax.random.key(1), jnp.float32)
    path, loaded = _roundtrip(tmp_path, potential)
    _assert_bit_identical(potential, loaded)
    x = _some_input(potential, jax.random.key(2))
    np.testing.assert_array_equal(np.asarray(potential.energy(x)), np.asarray(loaded.energy(x)))
    meta = ebm_io.load_metadata(path)
    assert meta["family"] == type(potential).name
    assert [a["key"] for a in meta["arrays"]] == [k for k, _ in _leaves(potential)]


@pytest.mark.parametrize("family", FLOAT64_FAMILIES)
def test_roundtrip_float64(tmp_path, family):
    with jax.enable_x64(True):
        potential = FAMILIES[family](jax.random.key(3), jnp.float64)
        assert all(arr.dtype == np.float64 for _, arr in _leaves(potential))
        _, loaded = _roundtrip(tmp_path, potential)
        _assert_bit_identical(potential, loaded)
        x = _some_input(potential, jax.random.key(4))
        np.testing.assert_array_equal(np.asarray(potential.energy(x)), np.asarray(loaded.energy(x)))


def test_float64_file_refused_without_x64(tmp_path):
    """Loading float64 with 64-bit mode off would silently truncate; it is refused instead."""
    with jax.enable_x64(True):
        potential = _bernoulli_rbm(jax.random.key(3), jnp.float64)
        ep.save(tmp_path / "f64.ebm", potential)
    with pytest.raises(ValueError, match="enable_x64"):
        ep.load(tmp_path / "f64.ebm")


def test_roundtrip_bfloat16(tmp_path):
    """ml_dtypes travel as raw bytes in the .npy member and come back as bfloat16."""
    rbm = _bernoulli_rbm(jax.random.key(5), jnp.float32)
    potential = ep.BernoulliRBM(rbm.W.astype(jnp.bfloat16), rbm.b.astype(jnp.bfloat16), rbm.c.astype(jnp.bfloat16))
    _, loaded = _roundtrip(tmp_path, potential)
    _assert_bit_identical(potential, loaded)
    assert loaded.W.dtype == jnp.bfloat16


def test_save_is_deterministic(tmp_path):
    rbm = _bernoulli_rbm(jax.random.key(0), jnp.float32)
    ep.save(tmp_path / "a.ebm", rbm)
    ep.save(tmp_path / "b.ebm", rbm)
    assert (tmp_path / "a.ebm").read_bytes() == (tmp_path / "b.ebm").read_bytes()


def test_file_bytes_unchanged_by_the_archive_refactor(tmp_path, monkeypatch):
    """A fixed model saves to the very bytes the writer before ebm_ppl.archive produced (sha256
    pinned from that writer), so files written before and after load in both versions."""
    monkeypatch.setattr(ebm_io, "__version__", "0.1.0")
    W = (np.arange(24, dtype=np.float32).reshape(6, 4) - 11.5) / 8
    rbm = ep.BernoulliRBM(jnp.asarray(W), jnp.linspace(-1, 1, 6, dtype=jnp.float32),
                          jnp.asarray([0.5, -0.25, 0.0, -0.0], jnp.float32))
    ep.save(tmp_path / "rbm.ebm", rbm, metadata={"note": "fixed", "é": [1, 2.5]})
    gaussian = ep.Gaussian(jnp.asarray([1.0, 2.0, 3.0]), scale_diag=jnp.asarray([1.0, 0.5, 2.0]))
    ep.save(tmp_path / "gaussian.ebm", gaussian)
    digests = [hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("rbm.ebm", "gaussian.ebm")]
    assert digests == ["152c12f0112be3ccb6b24a394c3d4ffebfff0ce2271c1d6a6a52fb21205fc84b",
                       "de781e10f4687d42d3654e744f39cc6a4a8e71975f8c470a6ab42ec91b65b92e"]


def test_format_layout(saved):
    path, rbm = saved
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("metadata.json"))
        assert meta["format"] == "ebm_ppl.potential"
        assert meta["format_version"] == 1
        assert meta["family"] == "bernoulli_rbm"
        assert meta["class"].endswith("BernoulliRBM")
        assert meta["package_version"] == ep.__version__
        assert meta["config"] == {}
        assert [a["key"] for a in meta["arrays"]] == [".W", ".b", ".c"]
        for entry in meta["arrays"]:
            data = zf.read(entry["file"])
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
            arr = npy_format.read_array(io.BytesIO(data), allow_pickle=False)
            assert list(arr.shape) == entry["shape"] and arr.dtype.name == entry["dtype"]


def test_user_metadata(tmp_path):
    rbm = _bernoulli_rbm(jax.random.key(0), jnp.float32)
    extras = {"epochs": 3, "data": "digits", "lr": [0.1, 0.01]}
    ep.save(tmp_path / "m.ebm", rbm, metadata=extras)
    assert ebm_io.load_metadata(tmp_path / "m.ebm")["user"] == extras
    with pytest.raises(TypeError, match="JSON"):
        ep.save(tmp_path / "bad.ebm", rbm, metadata={"key": object()})
    assert not (tmp_path / "bad.ebm").exists()


def test_load_accepts_any_suffix_and_str_path(tmp_path):
    rbm = _bernoulli_rbm(jax.random.key(0), jnp.float32)
    path = str(tmp_path / "weights.bin")
    ep.save(path, rbm)
    _assert_bit_identical(rbm, ep.load(path))


# -- like= -------------------------------------------------------------------------------------
def test_load_like_template(saved):
    path, rbm = saved
    template = _bernoulli_rbm(jax.random.key(99), jnp.float32)
    loaded = ep.load(path, like=template)
    _assert_bit_identical(rbm, loaded)


def test_load_like_shape_mismatch(saved):
    path, _ = saved
    template = ep.BernoulliRBM.init(jax.random.key(0), 6, 5)
    with pytest.raises(ValueError, match=r"\.W"):
        ep.load(path, like=template)


def test_load_like_wrong_family(saved):
    path, _ = saved
    with pytest.raises(ValueError, match="bernoulli_rbm"):
        ep.load(path, like=ep.Gaussian(jnp.zeros(6)))
    with pytest.raises(TypeError):
        ep.load(path, like={"W": 1})


def test_load_like_jem(tmp_path):
    jem = ep.JEM.init(jax.random.key(1), in_features=8, num_classes=3, width=16, depth=2)
    template = ep.JEM.init(jax.random.key(2), in_features=8, num_classes=3, width=16, depth=2)
    _, loaded = _roundtrip(tmp_path, jem, like=template)
    _assert_bit_identical(jem, loaded)


def test_jem_custom_network_needs_like(tmp_path):
    net = eqx.nn.MLP(8, 3, 16, 2, key=jax.random.key(1))
    jem = ep.JEM(net, event_shape=(8,))
    path = tmp_path / "jem.ebm"
    ep.save(path, jem)
    with pytest.raises(ValueError, match="like="):
        ep.load(path)
    template = ep.JEM(eqx.nn.MLP(8, 3, 16, 2, key=jax.random.key(2)), event_shape=(8,))
    loaded = ep.load(path, like=template)
    _assert_bit_identical(jem, loaded)
    x = jax.random.normal(jax.random.key(3), (4, 8))
    np.testing.assert_array_equal(np.asarray(jem.energy(x)), np.asarray(loaded.energy(x)))


class _Opaque(Potential):
    """A family whose structure (a nested Equinox layer) the config cannot describe."""

    name: ClassVar[str] = "_test_io_opaque"
    support: ClassVar[Support] = Support.REAL
    net: eqx.nn.Linear
    shift: jax.Array

    def __init__(self, key, dim=3):
        self.net = eqx.nn.Linear(dim, 1, key=key)
        self.shift = jnp.arange(dim, dtype=jnp.float32)

    @property
    def event_shape(self):
        return (self.shift.shape[0],)

    def unbatched_energy(self, x):
        return self.net(x - self.shift)[0]

    @classmethod
    def from_config(cls, config, arrays):
        raise NotImplementedError("the network's layout is not in the config")


@pytest.fixture
def opaque_registered(monkeypatch):
    """Register ``_Opaque`` for one test only, so other tests see the registry unchanged."""
    monkeypatch.setitem(registry._REGISTRY, _Opaque.name, _Opaque)


def test_not_rebuildable_needs_like(tmp_path, opaque_registered):
    model = _Opaque(jax.random.key(0))
    path = tmp_path / "opaque.ebm"
    ep.save(path, model)
    assert [a["key"] for a in ebm_io.load_metadata(path)["arrays"]] == [".net.weight", ".net.bias", ".shift"]
    with pytest.raises(ValueError, match="like="):
        ep.load(path)
    loaded = ep.load(path, like=_Opaque(jax.random.key(1)))
    _assert_bit_identical(model, loaded)
    x = jnp.ones((2, 3))
    np.testing.assert_array_equal(np.asarray(model.energy(x)), np.asarray(loaded.energy(x)))


def test_unregistered_family_warns_and_needs_like(tmp_path):
    model = _Opaque(jax.random.key(0))
    path = tmp_path / "opaque.ebm"
    with pytest.warns(UserWarning, match="not registered"):
        ep.save(path, model)
    with pytest.raises(ValueError, match="unknown potential family"):
        ep.load(path)
    _assert_bit_identical(model, ep.load(path, like=_Opaque(jax.random.key(1))))


def test_load_like_config_mismatch(tmp_path):
    """Same shapes but another activation: taking the template's would silently change E(x)."""
    jem = ep.JEM.init(jax.random.key(1), in_features=8, num_classes=3, width=16, depth=2, activation="elu")
    template = ep.JEM.init(jax.random.key(2), in_features=8, num_classes=3, width=16, depth=2, activation="relu")
    ep.save(tmp_path / "jem.ebm", jem)
    with pytest.raises(ValueError, match="config"):
        ep.load(tmp_path / "jem.ebm", like=template)


# -- refusing pickles --------------------------------------------------------------------------
def test_pickle_file_refused(tmp_path):
    sentinel = tmp_path / "pwned"
    payload = pickle.dumps({"W": _Evil(sentinel), "b": [1.0, 2.0]})
    path = tmp_path / "model.ebm"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match="pickle"):
        ep.load(path)
    with pytest.raises(ValueError, match="pickle"):
        ebm_io.load_metadata(path)
    assert not sentinel.exists()
    # control: the payload is live, so the refusal above is what kept the sentinel away
    pickle.loads(payload)
    assert sentinel.exists()


def test_protocol0_pickle_refused(tmp_path):
    path = tmp_path / "model.ebm"
    path.write_bytes(pickle.dumps({"W": [1.0]}, protocol=0))
    with pytest.raises(ValueError, match="not an ebm_ppl model file"):
        ep.load(path)


@pytest.mark.parametrize("meta_dtype", ["float32", "object"])
def test_object_npy_member_refused(saved, tmp_path, meta_dtype):
    """An .npy member carrying a pickled object array is refused before anything is unpickled."""
    path, _ = saved
    sentinel = tmp_path / "pwned"
    evil = _npy_bytes(np.array([_Evil(sentinel)], dtype=object), allow_pickle=True)

    def edit(meta):  # make the metadata agree with the payload, so only its dtype can stop it
        meta["arrays"][0].update(sha256=hashlib.sha256(evil).hexdigest(), shape=[1], dtype=meta_dtype)

    _rewrite(path, members={"arrays/0.npy": evil}, edit_meta=edit)
    with pytest.raises(ValueError, match="pickl"):
        ep.load(path)
    assert not sentinel.exists()


def test_bare_npy_refused(tmp_path):
    path = tmp_path / "model.ebm"
    path.write_bytes(_npy_bytes(np.zeros(3)))
    with pytest.raises(ValueError, match="not an ebm_ppl model file"):
        ep.load(path)


# -- damaged files -----------------------------------------------------------------------------
@pytest.mark.parametrize("keep", [0.5, 0.95, 10])
def test_truncated_file_refused(saved, keep):
    path, _ = saved
    data = path.read_bytes()
    n = int(len(data) * keep) if keep < 1 else keep
    path.write_bytes(data[:n])
    with pytest.raises(ValueError, match=str(path.name)):
        ep.load(path)


def test_empty_file_refused(tmp_path):
    path = tmp_path / "empty.ebm"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="not an ebm_ppl model file"):
        ep.load(path)


def test_flipped_byte_in_array_refused(saved):
    """The stored bytes of W are found in the file and one bit flipped; the zip CRC catches it."""
    path, rbm = saved
    data = bytearray(path.read_bytes())
    at = bytes(data).find(np.asarray(rbm.W).tobytes())
    assert at > 0
    data[at + 5] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupted"):
        ep.load(path)


def test_changed_array_fails_sha256(saved):
    """A member replaced by another valid array (fresh, valid CRC) is caught by its sha256."""
    path, rbm = saved
    _rewrite(path, members={"arrays/0.npy": _npy_bytes(np.asarray(rbm.W) + 1)})
    with pytest.raises(ValueError, match="sha256"):
        ep.load(path)


def test_foreign_zip_refused(tmp_path):
    path = tmp_path / "model.ebm"
    with open(path, "wb") as f:
        np.savez(f, W=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="metadata.json"):
        ep.load(path)


def test_missing_member_refused(saved):
    path, _ = saved
    _rewrite(path, drop=("arrays/1.npy",))
    with pytest.raises(ValueError, match="missing"):
        ep.load(path)


def test_malformed_json_refused(saved):
    path, _ = saved
    _rewrite(path, members={"metadata.json": b'{"format": "ebm_ppl.potential", '})
    with pytest.raises(ValueError, match="JSON"):
        ep.load(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(format="something.else"), "format"),
        (lambda m: m.update(format_version=99), "newer"),
        (lambda m: m.update(family="no_such_family"), "unknown potential family"),
        (lambda m: m.pop("arrays"), "arrays"),
        (lambda m: m["arrays"][0].update(shape=[4, 6]), "shape"),
        (lambda m: m["arrays"][0].update(dtype="float16"), "dtype"),
        (lambda m: m["arrays"][0].update(sha256="0" * 64), "sha256"),
        (lambda m: m["arrays"][0].update(key=".Z"), "does not fit the registered BernoulliRBM"),
    ],
)
def test_bad_metadata_refused(saved, edit, message):
    path, _ = saved
    _rewrite(path, edit_meta=edit)
    with pytest.raises(ValueError, match=message) as info:
        ep.load(path)
    assert str(path) in str(info.value)


def test_compressed_member_refused_naming_it(saved):
    """ebm_ppl never compresses; a compressed member is refused before it is inflated (the
    1 GiB decompression bomb itself is in tests/test_archive.py)."""
    path, _ = saved
    _rewrite(path, compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError, match="member 'arrays/0.npy' is compressed"):
        ep.load(path)


def test_member_larger_than_declared_refused_before_reading(saved, monkeypatch):
    """W's member replaced by 2000 floats: 8128 bytes, more than float32[6, 4] plus the 4096-byte
    header bound; refused from the zip directory alone, before the member is opened."""
    path, _ = saved
    _rewrite(path, members={"arrays/0.npy": _npy_bytes(np.zeros(2000, np.float32))})
    real_open = zipfile.ZipFile.open

    def open_json_only(self, member, *args, **kwargs):
        assert not getattr(member, "filename", member).endswith(".npy"), "an array member was opened"
        return real_open(self, member, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", open_json_only)
    with pytest.raises(ValueError, match=r"array \.W \(arrays/0\.npy\) is 8128 bytes, more than the 4192"):
        ep.load(path)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_parameters_refused_when_saving(tmp_path, value):
    """Constructors refuse NaN, but eqx.tree_at (or training) can put it in after construction."""
    rbm = _bernoulli_rbm(jax.random.key(0), jnp.float32)
    broken = eqx.tree_at(lambda m: m.b, rbm, rbm.b.at[2].set(value))
    with pytest.raises(ValueError, match=r"leaf \.b contains .*a model file holds finite parameters only"):
        ep.save(tmp_path / "m.ebm", broken)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("like", [False, True])
def test_non_finite_arrays_refused_when_loading(saved, like):
    """A file altered to hold NaN (sha256 updated) is refused, with like= too, which bypasses the
    family's constructor."""
    path, rbm = saved
    W = np.asarray(rbm.W).copy()
    W[1, 2] = np.nan
    data = _npy_bytes(W)
    _rewrite(path, members={"arrays/0.npy": data},
             edit_meta=lambda m: m["arrays"][0].update(sha256=hashlib.sha256(data).hexdigest()))
    with pytest.raises(ValueError, match=r"array \.W contains 1 NaN and 0 infinite value\(s\) \(of 24\)") as info:
        ep.load(path, like=rbm if like else None)
    assert str(path) in str(info.value)


def test_invalid_parameters_refused_by_constructor(saved):
    """A well-formed file whose W is asymmetric is refused by BoltzmannMachine's own checks."""
    path, _ = saved
    W = np.arange(16, dtype=np.float32).reshape(4, 4)
    bad = _npy_bytes(W)

    def edit(meta):
        meta["family"] = "boltzmann"
        meta["arrays"] = [
            {"key": ".W", "file": "arrays/0.npy", "shape": [4, 4], "dtype": "float32", "sha256": hashlib.sha256(bad).hexdigest()},
            {"key": ".b", "file": "arrays/1.npy", "shape": [4], "dtype": "float32",
             "sha256": hashlib.sha256(_npy_bytes(np.zeros(4, np.float32))).hexdigest()},
        ]

    _rewrite(path, members={"arrays/0.npy": bad, "arrays/1.npy": _npy_bytes(np.zeros(4, np.float32))}, edit_meta=edit)
    with pytest.raises(ValueError, match="symmetric"):
        ep.load(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.ebm"
    with pytest.raises(FileNotFoundError, match="nope.ebm"):
        ep.load(path)


# -- saving: errors and atomicity --------------------------------------------------------------
def test_save_missing_directory(tmp_path):
    rbm = _bernoulli_rbm(jax.random.key(0), jnp.float32)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ep.save(tmp_path / "no" / "such" / "dir" / "m.ebm", rbm)
    assert list(tmp_path.iterdir()) == []


def test_save_non_potential(tmp_path):
    with pytest.raises(TypeError, match="Potential"):
        ep.save(tmp_path / "m.ebm", {"W": jnp.zeros(3)})
    with pytest.raises(TypeError, match="Potential"):
        ep.save(tmp_path / "m.ebm", eqx.nn.Linear(2, 2, key=jax.random.key(0)))
    assert list(tmp_path.iterdir()) == []


class _Boom(Exception):
    pass


def _fail(*args, **kwargs):
    raise _Boom("simulated failure")


def _fail_second_call(real):
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise _Boom("simulated failure in the middle of writing")
        return real(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("where", ["os.replace", "write_array", "fsync"])
def test_failed_save_leaves_old_file_and_no_temp(saved, monkeypatch, where):
    path, rbm = saved
    before = path.read_bytes()
    if where == "os.replace":
        monkeypatch.setattr(os, "replace", _fail)
    elif where == "fsync":
        monkeypatch.setattr(os, "fsync", _fail)
    else:
        monkeypatch.setattr(npy_format, "write_array", _fail_second_call(npy_format.write_array))
    other = _bernoulli_rbm(jax.random.key(7), jnp.float32)
    with pytest.raises(_Boom):
        ep.save(path, other)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    _assert_bit_identical(rbm, ep.load(path))


def test_save_replaces_existing_file(saved):
    path, _ = saved
    other = _bernoulli_rbm(jax.random.key(7), jnp.float32)
    ep.save(path, other)
    _assert_bit_identical(other, ep.load(path))
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_save_new_file_has_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        ep.save(tmp_path / "m.ebm", _bernoulli_rbm(jax.random.key(0), jnp.float32))
    finally:
        os.umask(umask)
    assert (tmp_path / "m.ebm").stat().st_mode & 0o777 == 0o644
