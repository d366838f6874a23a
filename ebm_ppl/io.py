"""Save and load potentials as safe, self-describing files (never pickles).

    ep.save("rbm.ebm", rbm)
    rbm = ep.load("rbm.ebm")
    jem = ep.load("jem.ebm", like=ep.JEM.init(key, in_features=8, num_classes=3))

File format (``format_version`` 1). A model file is a zip archive (suffix ``.ebm`` by convention;
any path works), members stored uncompressed, holding:

``metadata.json``
    UTF-8 JSON object::

        {"format": "ebm_ppl.potential",
         "format_version": 1,
         "family": "bernoulli_rbm",                  # registry name, cls.name
         "class": "ebm_ppl.potentials.bernoulli_rbm.BernoulliRBM",
         "package_version": "0.1.0",                 # ebm_ppl.__version__ of the writer
         "config": {...},                            # potential.to_config()
         "arrays": [{"key": ".W",                    # jax.tree_util.keystr of the leaf's path
                     "file": "arrays/0.npy",
                     "shape": [64, 16],
                     "dtype": "float32",             # numpy dtype name
                     "sha256": "..."}, ...],         # of the member's bytes (the whole .npy)
         "user": {...}}                              # save(..., metadata=...), else {}

``arrays/<i>.npy``
    One NumPy ``.npy`` file per array leaf of ``eqx.filter(potential, eqx.is_array)``, in the
    order of ``jax.tree_util.tree_flatten_with_path``, written with
    ``numpy.lib.format.write_array(..., allow_pickle=False)``. Dtypes NumPy cannot name natively
    (``bfloat16`` and the other ``ml_dtypes``) are stored as raw bytes (``|V2``) and reinterpreted
    from the ``dtype`` field on load.

Array members of floating dtypes hold finite values only. Members are never compressed; readers
refuse a compressed or encrypted member, a member larger than its declared shape and dtype allow
(plus at most 4096 bytes of ``.npy`` header; ebm_ppl writes 128), a ``metadata.json`` over
64 MiB, and members whose sizes sum to more than the file's, all before reading any data.

Loading never unpickles: pickles (and anything else that is not a zip) are refused, ``.npy``
members are read with their headers checked first, object dtypes are refused before reading, and
every member's sha256, shape and dtype are checked against the metadata, and its values for NaN
and infinities. A file that fails any check raises :class:`ValueError` naming the file and the
problem. The potential is rebuilt by its family's ``from_config(config, arrays)`` (so its
constructor validates the parameters), or, with ``like=``, by putting the arrays into a template
potential of the same structure (for families whose structure the config cannot describe, such as
a JEM with a custom network).

Saving is atomic (:func:`ebm_ppl.archive.atomic_write`): the archive is written to a temporary
file in the target's directory, flushed and fsynced, then moved onto the target with
:func:`os.replace`; if anything fails, the temporary file is removed and an existing file at the
target is left untouched. Non-finite parameters are refused before anything is written.
"""

from __future__ import annotations

import errno
import json
import os
import re
import warnings
import zipfile
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl.archive import (
    Archive, NpyMember, count_nonfinite, load_error, open_archive, write_archive, write_json, write_npy,
)
from ebm_ppl._version import __version__
from ebm_ppl.potentials.base import Potential, check_potential
from ebm_ppl.potentials.registry import get_potential

__all__ = ["save", "load", "load_metadata", "FORMAT", "FORMAT_VERSION"]

FORMAT = "ebm_ppl.potential"
FORMAT_VERSION = 1
_METADATA = "metadata.json"
_MAX_METADATA_BYTES = 64 * 2**20
_SHA256 = re.compile(r"[0-9a-f]{64}")


# -- save --------------------------------------------------------------------------------------
def save(path: str | os.PathLike, potential: Potential, *, metadata: dict[str, Any] | None = None) -> None:
    """Write ``potential`` to ``path`` atomically in the ``.ebm`` zip format (module docstring).

    Args:
        path: the file to write; an existing file is replaced. Its directory must exist.
        potential: any :class:`ebm_ppl.Potential`.
        metadata: optional JSON-serializable dict of your own (training settings, data
            provenance), stored under ``"user"`` and returned by :func:`load_metadata`.

    Raises:
        TypeError: ``potential`` is not a Potential, or holds something that cannot be stored
            without pickling (object arrays, PRNG keys, a non-JSON config or ``metadata``).
        ValueError: a floating array leaf holds NaN or an infinity (named in the message).
        FileNotFoundError: the directory of ``path`` does not exist (it is not created).
        IsADirectoryError: ``path`` is a directory.
    """
    check_potential(potential, "ebm_ppl.save")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            errno.ENOENT, f"cannot save: directory {directory!r} does not exist (ebm_ppl.save does not create it)", path
        )
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "cannot save: the path is a directory", path)

    cls = type(potential)
    family = getattr(cls, "name", None)
    if not isinstance(family, str) or not family:
        raise TypeError(f"ebm_ppl.save: {cls.__qualname__} has no registry name (set the class variable `name`)")
    config = potential.to_config()
    if _registered(family) is not cls:
        warnings.warn(
            f"ebm_ppl.save: {cls.__qualname__} is not registered as {family!r}; the file will load only "
            "with load(path, like=<a template potential>)",
            stacklevel=2,
        )
    header: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "family": family,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "package_version": __version__,
        "config": _json_roundtrip(config, f"{cls.__qualname__}.to_config()"),
        "arrays": [],
        "user": _json_roundtrip({} if metadata is None else metadata, "metadata", want_dict=True),
    }
    leaves = _array_leaves(potential)

    def write(zf: zipfile.ZipFile) -> None:
        for i, (key, arr) in enumerate(leaves):
            name = f"arrays/{i}.npy"
            sha = write_npy(zf, name, arr)
            header["arrays"].append(
                {"key": key, "file": name, "shape": list(arr.shape), "dtype": arr.dtype.name, "sha256": sha}
            )
        write_json(zf, _METADATA, header, indent=1)

    write_archive(path, write)


def _array_leaves(potential: Potential) -> list[tuple[str, np.ndarray]]:
    """``(keystr, host numpy copy)`` of every array leaf, in flatten order."""
    out = []
    for key, leaf in _flatten(potential):
        if isinstance(leaf, jax.core.Tracer):
            raise TypeError(f"ebm_ppl.save: leaf {key} is a tracer; save outside jit/grad/vmap")
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            raise TypeError(
                f"ebm_ppl.save: leaf {key} is a PRNG key array; store jax.random.key_data(key) instead"
            )
        arr = np.asarray(jax.device_get(leaf))
        if not _storable(arr.dtype):
            raise TypeError(f"ebm_ppl.save: leaf {key} has dtype {arr.dtype}, which cannot be stored without pickling")
        if problem := _nonfinite(arr):
            raise ValueError(f"ebm_ppl.save: leaf {key} {problem}; a model file holds finite parameters only")
        out.append((key, arr))
    return out


def _nonfinite(arr: np.ndarray) -> str | None:
    """``"contains 1 NaN and 0 infinite value(s) (of 24)"``; None for an array with neither."""
    nan, inf = count_nonfinite(arr)
    return f"contains {nan} NaN and {inf} infinite value(s) (of {arr.size})" if nan or inf else None


def _json_roundtrip(value: Any, what: str, *, want_dict: bool = False) -> Any:
    if want_dict and not isinstance(value, dict):
        raise TypeError(f"ebm_ppl.save: {what} must be a dict, got {type(value).__qualname__}")
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"ebm_ppl.save: {what} must be JSON-serializable (no NaN/inf): {exc}") from None


# -- load --------------------------------------------------------------------------------------
def load(path: str | os.PathLike, *, like: Potential | None = None) -> Potential:
    """Read a potential written by :func:`save`, verifying every array; nothing is unpickled.

    Args:
        path: a file written by :func:`save`.
        like: optional template potential of the same family and structure. Its array leaves are
            replaced, in flatten order, by the stored ones (keys, shapes and dtypes must match,
            and so must its ``to_config()``); its static parts (for a JEM, the network's
            activation and layout) are kept. Needed for families that cannot be rebuilt from
            their config alone. Array leaves are placed on the template leaves' devices.

    Returns:
        The potential, with arrays bit-identical to the saved ones.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is a pickle, not an ebm_ppl model file, corrupted, truncated or
            altered (compressed members included), of an unknown family, holds NaN or infinite
            parameters, holds 64-bit arrays while JAX's 64-bit mode is off, does not match
            ``like``, or holds parameters the family's constructor refuses.
    """
    if like is not None and not isinstance(like, Potential):
        raise TypeError(f"ebm_ppl.load: like= must be an ebm_ppl.Potential, got {type(like).__qualname__}")
    path = os.fspath(path)
    with _open(path) as archive:
        meta = _read_metadata(archive)
        members = [NpyMember(e["file"], tuple(e["shape"]), _resolve_dtype(e["dtype"]), f"array {e['key']}",
                             e["sha256"]) for e in meta["arrays"]]
        stored = archive.read_arrays(members, mismatch=f" (as {_METADATA} declares)")
    arrays = dict(zip((entry["key"] for entry in meta["arrays"]), stored))
    _check_values(arrays, path)
    if like is not None:
        return _fill_template(like, meta, arrays, path)
    return _rebuild(meta, arrays, path)


def load_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The validated ``metadata.json`` of a model file, without reading its arrays.

    ``load_metadata(path)["user"]`` is the ``metadata=`` dict given to :func:`save`; the other
    keys are described in the module docstring (family, config, package version, array list).

    Raises:
        FileNotFoundError, ValueError: as :func:`load`.
    """
    with _open(os.fspath(path)) as archive:
        return _read_metadata(archive)


def _open(path: str) -> Archive:
    return open_archive(path, kind="model file", writer="ebm_ppl.save")


def _read_metadata(archive: Archive) -> dict[str, Any]:
    names = archive.names()
    if _METADATA not in names:
        pytorch = any(n.endswith("data.pkl") for n in names)
        hint = " (it looks like a PyTorch checkpoint, which holds pickles)" if pytorch else ""
        raise archive.error(f"not an ebm_ppl model file: the zip archive has no {_METADATA}{hint}")
    meta = archive.read_json(_METADATA, _MAX_METADATA_BYTES)
    if not isinstance(meta, dict):
        raise archive.error(f"{_METADATA} must hold a JSON object")
    if meta.get("format") != FORMAT:
        raise archive.error(f"not an ebm_ppl model file: format is {meta.get('format')!r}, expected {FORMAT!r}")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise archive.error(f"invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise archive.error(f"format_version {version} was written by a newer ebm_ppl (package_version "
                            f"{meta.get('package_version')!r}); this one reads up to {FORMAT_VERSION}. Upgrade ebm_ppl")
    for field, kind in (("family", str), ("config", dict), ("arrays", list)):
        if not isinstance(meta.get(field), kind):
            raise archive.error(f"{_METADATA}: {field!r} is missing or not a {kind.__name__}")
    meta.setdefault("user", {})
    seen_keys, seen_files = set(), set()
    for i, entry in enumerate(meta["arrays"]):
        _check_entry(entry, i, archive)
        if entry["key"] in seen_keys or entry["file"] in seen_files:
            raise archive.error(f"{_METADATA}: array {entry['key']!r} / {entry['file']!r} is listed twice")
        seen_keys.add(entry["key"])
        seen_files.add(entry["file"])
    return meta


def _check_entry(entry: Any, i: int, archive: Archive) -> None:
    where = f"{_METADATA}: arrays[{i}]"
    if not isinstance(entry, dict):
        raise archive.error(f"{where} is not an object")
    for field in ("key", "file", "dtype", "sha256"):
        if not isinstance(entry.get(field), str):
            raise archive.error(f"{where}: {field!r} is missing or not a string")
    shape = entry.get("shape")
    if not (isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
        raise archive.error(f"{where}: 'shape' must be a list of non-negative integers, got {shape!r}")
    if not _SHA256.fullmatch(entry["sha256"]):
        raise archive.error(f"{where}: 'sha256' is not a hex digest")
    if _resolve_dtype(entry["dtype"]) is None:
        raise archive.error(
            f"{where} ({entry['key']}) declares dtype {entry['dtype']!r}; only numeric dtypes are loaded "
            "(object arrays would need unpickling, which ebm_ppl never does)",
        )


def _storable(dtype: np.dtype) -> bool:
    return dtype.kind in "biufc" or dtype.type.__module__.startswith("ml_dtypes")


def _resolve_dtype(name: str) -> np.dtype | None:
    """The numeric dtype called ``name`` (numpy or ml_dtypes), or None for anything else."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):  # no "O", "V8", "i4,f4", "<f4" spellings
        return None
    try:
        dtype = jnp.dtype(name)
    except TypeError:
        return None
    return dtype if _storable(dtype) and dtype.name == name else None


def _check_values(arrays: dict[str, np.ndarray], path: str) -> None:
    """Finite floating arrays only, and none that JAX's precision mode would truncate."""
    for key, arr in arrays.items():
        if problem := _nonfinite(arr):
            raise load_error(path, f"array {key} {problem}; a model file holds finite parameters only")
        if jax.dtypes.canonicalize_dtype(arr.dtype) != arr.dtype:
            raise load_error(path, f"array {key} is {arr.dtype} but JAX's 64-bit mode is off, so it would be "
                                   "truncated. Load it inside `with jax.enable_x64(True):` or after "
                                   "jax.config.update('jax_enable_x64', True)")


def _registered(family: str) -> type[Potential] | None:
    try:
        return get_potential(family)
    except KeyError:
        return None


def _rebuild(meta: dict[str, Any], arrays: dict[str, np.ndarray], path: str) -> Potential:
    family = meta["family"]
    cls = _registered(family)
    if cls is None:
        function = meta["config"].get("function")
        if function is not None:  # written by ep.potential(...): the function is the user's code
            raise load_error(path, f"{family!r} is a potential made from the function {function}; run its "
                                   f"ep.potential(..., name={family!r}) definition before ep.load, or pass "
                                   "like=<that potential>")
        raise load_error(path, f"unknown potential family {family!r} (class {meta.get('class')!r}); install or "
                               "import the package that registers it, or pass like=<a potential of that family>")
    try:
        potential = cls.from_config(dict(meta["config"]), _for_constructor(arrays))
    except NotImplementedError as exc:
        raise load_error(path, f"family {family!r} cannot be rebuilt from its config alone ({exc}); pass like=<a "
                               f"{cls.__qualname__} of the same structure>, e.g. ebm_ppl.load(path, like=template)"
                         ) from None
    except (ValueError, TypeError, KeyError) as exc:
        raise load_error(path, f"the file does not fit the registered {cls.__qualname__}: {exc}") from exc
    if not isinstance(potential, cls):
        raise load_error(path, f"{cls.__qualname__}.from_config returned a {type(potential).__qualname__}")
    _check_reproduced(potential, meta, arrays, path)
    return potential


def _for_constructor(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The arrays as ``from_config`` takes them: numpy, except ml_dtypes (bfloat16, ...) as jax
    arrays, which the families' parameter checks accept while numpy does not call them numbers."""
    return {key: arr if arr.dtype.kind in "biufc" else jnp.asarray(arr) for key, arr in arrays.items()}


def _check_reproduced(potential: Potential, meta: dict[str, Any], arrays: dict[str, np.ndarray], path: str) -> None:
    """The rebuilt potential must hold exactly the stored arrays (guards ``from_config`` bugs)."""
    name = type(potential).__qualname__
    rebuilt = [(key, np.asarray(jax.device_get(leaf))) for key, leaf in _flatten(potential)]
    stored_keys = [entry["key"] for entry in meta["arrays"]]
    if [key for key, _ in rebuilt] != stored_keys:
        raise load_error(path, f"{name}.from_config rebuilt arrays {[k for k, _ in rebuilt]}, "
                               f"but the file holds {stored_keys}")
    for key, arr in rebuilt:
        want = arrays[key]
        if arr.dtype != want.dtype or arr.shape != want.shape or arr.tobytes() != want.tobytes():
            raise load_error(path, f"{name}.from_config changed array {key} while rebuilding")


def _flatten(potential: Potential) -> list[tuple[str, Any]]:
    """``(keystr, leaf)`` of every array leaf, in flatten order."""
    params = eqx.filter(potential, eqx.is_array)
    return [(jax.tree_util.keystr(p), leaf) for p, leaf in jax.tree_util.tree_flatten_with_path(params)[0]]


def _fill_template(like: Potential, meta: dict[str, Any], arrays: dict[str, np.ndarray], path: str) -> Potential:
    family, like_name = meta["family"], type(like).__qualname__
    if getattr(type(like), "name", None) != family:
        raise load_error(path, f"the file holds a {family!r} potential, but like= is a {like_name} "
                               f"({getattr(type(like), 'name', None)!r})")
    config, stored = _json_roundtrip(like.to_config(), f"{like_name}.to_config()"), dict(meta["config"])
    if "function" in stored:  # a function potential's name for its code: like= names the code to use
        stored["function"] = config.get("function")
    if config != stored:
        differing = sorted(k for k in set(config) | set(stored) if config.get(k) != stored.get(k))
        file_side, like_side = ({k: c.get(k) for k in differing} for c in (stored, config))
        raise load_error(path, f"like= has a different config than the file for {differing}: "
                               f"file {file_side}, like= {like_side}")
    params, static = eqx.partition(like, eqx.is_array)
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    template_keys = [jax.tree_util.keystr(p) for p, _ in flat]
    stored_keys = [entry["key"] for entry in meta["arrays"]]
    if template_keys != stored_keys:
        missing = [k for k in stored_keys if k not in template_keys]
        extra = [k for k in template_keys if k not in stored_keys]
        raise load_error(path, f"like= does not match the file's arrays: in the file only {missing}, in like= only "
                               f"{extra}" + ("" if missing or extra else " (same keys, different order)"))
    leaves = []
    for key, (_, leaf) in zip(template_keys, flat):
        arr = arrays[key]
        if tuple(leaf.shape) != arr.shape or np.dtype(leaf.dtype) != arr.dtype:
            raise load_error(path, f"array {key}: the file holds shape {arr.shape} {arr.dtype}, like= has "
                                   f"{tuple(leaf.shape)} {np.dtype(leaf.dtype)}")
        if isinstance(leaf, np.ndarray):
            leaves.append(arr)
        elif isinstance(leaf, jax.Array) and not isinstance(leaf, jax.core.Tracer):
            leaves.append(jax.device_put(arr, leaf.sharding))
        else:
            leaves.append(jnp.asarray(arr))
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, leaves), static)
