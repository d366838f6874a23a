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

Loading never unpickles: pickles (and anything else that is not a zip) are refused, ``.npy``
members are read with ``allow_pickle=False`` and object dtypes are refused before reading, and
every member's sha256, shape and dtype are checked against the metadata. A file that fails any
check raises :class:`ValueError` naming the file and the problem. The potential is rebuilt by its
family's ``from_config(config, arrays)`` (so its constructor validates the parameters), or, with
``like=``, by putting the arrays into a template potential of the same structure (for families
whose structure the config cannot describe, such as a JEM with a custom network).

Saving is atomic: the archive is written to a temporary file in the target's directory, flushed
and fsynced, then moved onto the target with :func:`os.replace`; if anything fails, the temporary
file is removed and an existing file at the target is left untouched.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import struct
import warnings
import zipfile
import zlib
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from numpy.lib import format as npy_format

from ebm_ppl.archive import atomic_write
from ebm_ppl._version import __version__
from ebm_ppl.potentials.base import Potential
from ebm_ppl.potentials.registry import get_potential

__all__ = ["save", "load", "load_metadata", "FORMAT", "FORMAT_VERSION"]

FORMAT = "ebm_ppl.potential"
FORMAT_VERSION = 1
_METADATA = "metadata.json"
_MAX_METADATA_BYTES = 64 * 2**20
_MAX_NPY_HEADER_BYTES = 2**20  # a .npy member may exceed its data by at most this much
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # same bytes for the same model: reproducible files
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, struct.error, NotImplementedError, RuntimeError)


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
        FileNotFoundError: the directory of ``path`` does not exist (it is not created).
        IsADirectoryError: ``path`` is a directory.
    """
    if not isinstance(potential, Potential):
        raise TypeError(f"ebm_ppl.save expects an ebm_ppl.Potential, got {type(potential).__qualname__}")
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
    if _registered(family) is not cls:
        warnings.warn(
            f"ebm_ppl.save: {cls.__qualname__} is not registered as {family!r}; the file will load only "
            "with load(path, like=<a template potential>)",
            stacklevel=2,
        )
    config = potential.to_config()
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

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for i, (key, arr) in enumerate(leaves):
                name = f"arrays/{i}.npy"
                sha = _write_npy_member(zf, name, arr)
                header["arrays"].append(
                    {"key": key, "file": name, "shape": list(arr.shape), "dtype": arr.dtype.name, "sha256": sha}
                )
            text = json.dumps(header, indent=1, allow_nan=False, ensure_ascii=False)
            zf.writestr(_zinfo(_METADATA), text.encode("utf-8"))

    atomic_write(path, write)


def _array_leaves(potential: Potential) -> list[tuple[str, np.ndarray]]:
    """``(keystr, host numpy copy)`` of every array leaf, in flatten order."""
    params = eqx.filter(potential, eqx.is_array)
    out = []
    for key_path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        key = jax.tree_util.keystr(key_path)
        if isinstance(leaf, jax.core.Tracer):
            raise TypeError(f"ebm_ppl.save: leaf {key} is a tracer; save outside jit/grad/vmap")
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            raise TypeError(
                f"ebm_ppl.save: leaf {key} is a PRNG key array; store jax.random.key_data(key) instead"
            )
        arr = np.asarray(jax.device_get(leaf))
        if not _storable(arr.dtype):
            raise TypeError(f"ebm_ppl.save: leaf {key} has dtype {arr.dtype}, which cannot be stored without pickling")
        out.append((key, arr))
    return out


class _HashingWriter:
    """File-like sink that hashes what passes through to ``inner``."""

    def __init__(self, inner):
        self.inner = inner
        self.sha = hashlib.sha256()

    def write(self, data) -> int:
        data = memoryview(data).cast("B")
        self.sha.update(data)
        return self.inner.write(data)


def _write_npy_member(zf: zipfile.ZipFile, name: str, arr: np.ndarray) -> str:
    """Stream ``arr`` as a ``.npy`` member; return the sha256 of the member's bytes."""
    with zf.open(_zinfo(name), "w", force_zip64=arr.nbytes > 2**30) as member:
        sink = _HashingWriter(member)
        npy_format.write_array(sink, arr, allow_pickle=False)
    return sink.sha.hexdigest()


def _zinfo(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


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
        ValueError: the file is a pickle, not an ebm_ppl model file, corrupted or truncated, of an
            unknown family, holds 64-bit arrays while JAX's 64-bit mode is off, does not match
            ``like``, or holds parameters the family's constructor refuses.
    """
    if like is not None and not isinstance(like, Potential):
        raise TypeError(f"ebm_ppl.load: like= must be an ebm_ppl.Potential, got {type(like).__qualname__}")
    path = os.fspath(path)
    with _open_archive(path) as zf:
        meta = _read_metadata(zf, path)
        arrays = {entry["key"]: _read_array(zf, entry, path) for entry in meta["arrays"]}
    _check_precision(arrays, path)
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
    path = os.fspath(path)
    with _open_archive(path) as zf:
        return _read_metadata(zf, path)


def _bad(path: str, problem: str) -> ValueError:
    return ValueError(f"cannot load {path!r}: {problem}")


def _open_archive(path: str) -> zipfile.ZipFile:
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "no such model file", path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "expected a model file, got a directory", path)
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic[:1] == b"\x80":
        raise _bad(path, "the file is a Python pickle; ebm_ppl never loads pickles (it could run arbitrary code)")
    if magic == b"\x93NUMPY":
        raise _bad(path, "the file is a bare .npy array, not an ebm_ppl model file (write one with ebm_ppl.save)")
    if magic[:4] not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise _bad(path, "not an ebm_ppl model file (not a zip archive; write one with ebm_ppl.save)")
    try:
        return zipfile.ZipFile(path, "r")
    except _CORRUPT as exc:
        raise _bad(path, f"the file is corrupted or truncated (bad zip archive: {exc})") from None


def _read_member(zf: zipfile.ZipFile, name: str, path: str, max_bytes: int) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise _bad(path, f"member {name!r} is missing (the file is corrupted or truncated)") from None
    if info.file_size > max_bytes:
        raise _bad(path, f"member {name!r} is {info.file_size} bytes, more than the {max_bytes} its metadata allows")
    try:
        data = zf.read(info)
    except _CORRUPT as exc:
        raise _bad(path, f"member {name!r} is corrupted ({exc})") from None
    if len(data) != info.file_size:
        raise _bad(path, f"member {name!r} is truncated")
    return data


def _read_metadata(zf: zipfile.ZipFile, path: str) -> dict[str, Any]:
    names = zf.namelist()
    if _METADATA not in names:
        hint = " (it looks like a PyTorch checkpoint, which holds pickles)" if any(
            n.endswith("data.pkl") for n in names
        ) else ""
        raise _bad(path, f"not an ebm_ppl model file: the zip archive has no {_METADATA}{hint}")
    raw = _read_member(zf, _METADATA, path, _MAX_METADATA_BYTES)
    try:
        meta = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad(path, f"{_METADATA} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise _bad(path, f"{_METADATA} must hold a JSON object")
    if meta.get("format") != FORMAT:
        raise _bad(path, f"not an ebm_ppl model file: format is {meta.get('format')!r}, expected {FORMAT!r}")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _bad(path, f"invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise _bad(
            path,
            f"format_version {version} was written by a newer ebm_ppl (package_version "
            f"{meta.get('package_version')!r}); this one reads up to {FORMAT_VERSION}. Upgrade ebm_ppl",
        )
    for field, kind in (("family", str), ("config", dict), ("arrays", list)):
        if not isinstance(meta.get(field), kind):
            raise _bad(path, f"{_METADATA}: {field!r} is missing or not a {kind.__name__}")
    meta.setdefault("user", {})
    seen_keys, seen_files = set(), set()
    for i, entry in enumerate(meta["arrays"]):
        _check_entry(entry, i, path)
        if entry["key"] in seen_keys or entry["file"] in seen_files:
            raise _bad(path, f"{_METADATA}: array {entry['key']!r} / {entry['file']!r} is listed twice")
        seen_keys.add(entry["key"])
        seen_files.add(entry["file"])
    return meta


def _refuse_constant(name: str):
    raise ValueError(f"non-standard JSON constant {name}")


def _check_entry(entry: Any, i: int, path: str) -> None:
    where = f"{_METADATA}: arrays[{i}]"
    if not isinstance(entry, dict):
        raise _bad(path, f"{where} is not an object")
    for field in ("key", "file", "dtype", "sha256"):
        if not isinstance(entry.get(field), str):
            raise _bad(path, f"{where}: {field!r} is missing or not a string")
    shape = entry.get("shape")
    if not (isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
        raise _bad(path, f"{where}: 'shape' must be a list of non-negative integers, got {shape!r}")
    if not _SHA256.fullmatch(entry["sha256"]):
        raise _bad(path, f"{where}: 'sha256' is not a hex digest")
    dtype = _resolve_dtype(entry["dtype"])
    if dtype is None:
        raise _bad(
            path,
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


def _read_array(zf: zipfile.ZipFile, entry: dict[str, Any], path: str) -> np.ndarray:
    key, name = entry["key"], entry["file"]
    dtype = _resolve_dtype(entry["dtype"])
    shape = tuple(entry["shape"])
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    data = _read_member(zf, name, path, nbytes + _MAX_NPY_HEADER_BYTES)
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise _bad(path, f"array {key} ({name}) fails its sha256 check: the file is corrupted")
    try:
        arr = npy_format.read_array(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:  # object arrays: "Object arrays cannot be loaded when allow_pickle=False"
        raise _bad(path, f"array {key} ({name}) was refused: {exc}; ebm_ppl never unpickles") from None
    except (OSError, EOFError, SyntaxError, TypeError) as exc:
        raise _bad(path, f"array {key} ({name}) is not a valid .npy file ({exc})") from None
    if arr.dtype.kind == "V" and not arr.dtype.fields and arr.dtype.itemsize == dtype.itemsize and dtype.kind == "V":
        arr = arr.view(dtype)  # ml_dtypes such as bfloat16 travel as raw bytes
    if arr.dtype != dtype:
        raise _bad(path, f"array {key} ({name}) has dtype {arr.dtype}, but the metadata says {dtype}")
    if arr.shape != shape:
        raise _bad(path, f"array {key} ({name}) has shape {arr.shape}, but the metadata says {shape}")
    return arr


def _check_precision(arrays: dict[str, np.ndarray], path: str) -> None:
    for key, arr in arrays.items():
        if jax.dtypes.canonicalize_dtype(arr.dtype) != arr.dtype:
            raise _bad(
                path,
                f"array {key} is {arr.dtype} but JAX's 64-bit mode is off, so it would be truncated. "
                "Load it inside `with jax.enable_x64(True):` or after "
                "jax.config.update('jax_enable_x64', True)",
            )


def _registered(family: str) -> type[Potential] | None:
    try:
        return get_potential(family)
    except KeyError:
        return None


def _rebuild(meta: dict[str, Any], arrays: dict[str, np.ndarray], path: str) -> Potential:
    family = meta["family"]
    cls = _registered(family)
    if cls is None:
        raise _bad(
            path,
            f"unknown potential family {family!r} (class {meta.get('class')!r}); install or import the "
            "package that registers it, or pass like=<a potential of that family>",
        )
    try:
        potential = cls.from_config(dict(meta["config"]), _for_constructor(arrays))
    except NotImplementedError as exc:
        raise ValueError(
            f"cannot load {path!r}: family {family!r} cannot be rebuilt from its config alone ({exc}); "
            f"pass like=<a {cls.__qualname__} of the same structure>, e.g. ebm_ppl.load(path, like=template)"
        ) from None
    except (ValueError, TypeError, KeyError) as exc:
        raise _bad(path, f"the stored parameters were refused by {cls.__qualname__}: {exc}") from exc
    if not isinstance(potential, cls):
        raise _bad(path, f"{cls.__qualname__}.from_config returned a {type(potential).__qualname__}")
    _check_reproduced(potential, meta, arrays, path)
    return potential


def _for_constructor(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The arrays as ``from_config`` takes them: numpy, except ml_dtypes (bfloat16, ...) as jax
    arrays, which the families' parameter checks accept while numpy does not call them numbers."""
    return {key: arr if arr.dtype.kind in "biufc" else jnp.asarray(arr) for key, arr in arrays.items()}


def _check_reproduced(potential: Potential, meta: dict[str, Any], arrays: dict[str, np.ndarray], path: str) -> None:
    """The rebuilt potential must hold exactly the stored arrays (guards ``from_config`` bugs)."""
    rebuilt = [(key, np.asarray(jax.device_get(leaf))) for key, leaf in _flatten(potential)]
    stored_keys = [entry["key"] for entry in meta["arrays"]]
    if [key for key, _ in rebuilt] != stored_keys:
        raise _bad(
            path,
            f"{type(potential).__qualname__}.from_config rebuilt arrays {[k for k, _ in rebuilt]}, "
            f"but the file holds {stored_keys}",
        )
    for key, arr in rebuilt:
        want = arrays[key]
        if arr.dtype != want.dtype or arr.shape != want.shape or arr.tobytes() != want.tobytes():
            raise _bad(path, f"{type(potential).__qualname__}.from_config changed array {key} while rebuilding")


def _flatten(potential: Potential):
    params = eqx.filter(potential, eqx.is_array)
    return [(jax.tree_util.keystr(p), leaf) for p, leaf in jax.tree_util.tree_flatten_with_path(params)[0]]


def _fill_template(like: Potential, meta: dict[str, Any], arrays: dict[str, np.ndarray], path: str) -> Potential:
    family = meta["family"]
    if getattr(type(like), "name", None) != family:
        raise _bad(path, f"the file holds a {family!r} potential, but like= is a {type(like).__qualname__} "
                   f"({getattr(type(like), 'name', None)!r})")
    config = _json_roundtrip(like.to_config(), f"{type(like).__qualname__}.to_config()")
    if config != meta["config"]:
        differing = sorted(k for k in set(config) | set(meta["config"]) if config.get(k) != meta["config"].get(k))
        raise _bad(path, f"like= has a different config than the file for {differing}: "
                   f"file {({k: meta['config'].get(k) for k in differing})}, like= {({k: config.get(k) for k in differing})}")
    params, static = eqx.partition(like, eqx.is_array)
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    template_keys = [jax.tree_util.keystr(p) for p, _ in flat]
    stored_keys = [entry["key"] for entry in meta["arrays"]]
    if template_keys != stored_keys:
        missing = [k for k in stored_keys if k not in template_keys]
        extra = [k for k in template_keys if k not in stored_keys]
        raise _bad(
            path,
            f"like= does not match the file's arrays: in the file only {missing}, in like= only {extra}"
            + ("" if missing or extra else " (same keys, different order)"),
        )
    leaves = []
    for key, (_, leaf) in zip(template_keys, flat):
        arr = arrays[key]
        if tuple(leaf.shape) != arr.shape or np.dtype(leaf.dtype) != arr.dtype:
            raise _bad(
                path,
                f"array {key}: the file holds shape {arr.shape} {arr.dtype}, like= has "
                f"{tuple(leaf.shape)} {np.dtype(leaf.dtype)}",
            )
        if isinstance(leaf, np.ndarray):
            leaves.append(arr)
        elif isinstance(leaf, jax.Array) and not isinstance(leaf, jax.core.Tracer):
            leaves.append(jax.device_put(arr, leaf.sharding))
        else:
            leaves.append(jnp.asarray(arr))
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, leaves), static)
