"""Training checkpoints: any pytree of arrays (PRNG keys included) plus JSON, atomic, no pickle.

File format. A checkpoint is a zip archive written through :mod:`ebm_ppl.archive` (members stored
uncompressed) holding:

``leaves/<i>.npy``
    Leaf ``i`` of ``jax.tree.leaves(tree)`` as a ``.npy`` file (``allow_pickle=False``); a PRNG
    key array is stored as its ``jax.random.key_data``.
``meta.json``
    The caller's JSON object (NaN and infinities allowed: a training history may hold them) plus
    ``"num_leaves"`` (int) and ``"key_impls"``, ``{"<i>": "<implementation>"}`` for the key leaves
    (``"threefry2x32"``, ``"philox2x32_64"``, ...; absent in checkpoints written before it was kept).

Loading needs a template pytree of the same structure (the training loop rebuilds one from its
arguments), so nothing but arrays and JSON is ever read back. Every stored leaf must have its
template leaf's dtype and shape, and a key the template key's implementation; the archive's own
checks (sizes, no compression, no pickles) come first. Floating leaves must hold no NaN, and no
infinity unless the template leaf holds one too (an optimizer state such as optax's
``reduce_on_plateau`` or its line searches starts at ``inf``). Integer, boolean and key leaves
may hold any value.
"""

from __future__ import annotations

import os
import zipfile
from typing import Any

import jax
import numpy as np

from ebm_ppl.archive import (
    Archive, NpyMember, count_nonfinite, load_error, open_archive, write_archive, write_json, write_npy,
)
from ebm_ppl.random import is_key

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint_metadata", "META"]

#: The member holding the checkpoint's JSON metadata.
META = "meta.json"
_KIND, _WRITER = "checkpoint", "ebm_ppl.fit(..., checkpoint_dir=...)"
_OTHER_SETTINGS = "; it was written with other settings"


def _impl_name(key: jax.Array) -> str:
    return str(jax.random.key_impl(key))


def _leaves(tree: Any) -> list[tuple[str, Any]]:
    """``(keystr, leaf)`` in ``jax.tree.leaves`` order."""
    return [(jax.tree_util.keystr(p), leaf) for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


def save_checkpoint(path: str | os.PathLike, tree: Any, meta: dict[str, Any]) -> None:
    """Write ``tree``'s leaves and ``meta`` to ``path`` atomically (format in the module docstring).

    Args:
        path: the file to write; an existing file is replaced. Its directory must exist.
        tree: a pytree of arrays (JAX or NumPy, any shapes; PRNG key arrays included).
        meta: a JSON-serializable dict (NaN and infinities allowed).

    Raises:
        ValueError: a floating leaf holds NaN (it could not be loaded back); the message names it.
    """
    leaves = _leaves(tree)
    arrays = [np.asarray(jax.random.key_data(leaf) if is_key(leaf) else leaf) for _, leaf in leaves]
    for i, ((where, _), arr) in enumerate(zip(leaves, arrays)):
        nan, _ = count_nonfinite(arr)
        if nan:
            raise ValueError(f"save_checkpoint: {_label(i, where)} contains {nan} NaN value(s); a checkpoint "
                             "holding them could not be loaded")
    key_impls = {str(i): _impl_name(leaf) for i, (_, leaf) in enumerate(leaves) if is_key(leaf)}

    def write(zf: zipfile.ZipFile) -> None:
        for i, arr in enumerate(arrays):
            write_npy(zf, f"leaves/{i}.npy", arr)
        write_json(zf, META, dict(meta, num_leaves=len(leaves), key_impls=key_impls), allow_nan=True)

    write_archive(path, write)


def load_checkpoint(path: str | os.PathLike, template: Any) -> tuple[Any, dict[str, Any]]:
    """Read a checkpoint into ``template``'s structure, checking every leaf (module docstring).

    Args:
        path: a file written by :func:`save_checkpoint`.
        template: a pytree of the saved structure; each leaf gives the dtype and shape (for a
            PRNG key, the implementation) the stored leaf must have.

    Returns:
        ``(tree, meta)``: ``template``'s structure holding the stored leaves as JAX arrays (keys
        as keys), and the metadata dict.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a checkpoint, damaged or altered, was written with other
            settings (leaf count, dtypes, shapes, key implementations), or holds NaN or infinite
            values where the template has none (the message names the leaf and the file).
    """
    path = os.fspath(path)
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    with open_archive(path, kind=_KIND, writer=_WRITER) as archive:
        meta = _read_meta(archive)
        if meta.get("num_leaves") != len(flat):
            raise ValueError(f"checkpoint {path!r} holds {meta.get('num_leaves')} arrays, this training "
                             f"run has {len(flat)}: it was written with other settings")
        impls = meta.get("key_impls", {})
        members = [_expected(path, i, jax.tree_util.keystr(p), like, impls) for i, (p, like) in enumerate(flat)]
        arrays = archive.read_arrays(members, mismatch=_OTHER_SETTINGS)
    restored = []
    for member, arr, (_, like) in zip(members, arrays, flat):
        _check_values(path, member.label, arr, like)
        restored.append(jax.random.wrap_key_data(arr, impl=jax.random.key_impl(like))
                        if is_key(like) else jax.numpy.asarray(arr))
    return jax.tree_util.tree_unflatten(treedef, restored), meta


def read_checkpoint_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of a checkpoint (``epoch``, ``records``, ...), without reading its arrays.

    Raises:
        ValueError: the file is missing, unreadable, damaged or not a checkpoint.
    """
    try:
        with open_archive(path, kind=_KIND, writer=_WRITER) as archive:
            return _read_meta(archive)
    except OSError as exc:
        raise load_error(os.fspath(path), exc.strerror or str(exc)) from None


def _read_meta(archive: Archive) -> dict[str, Any]:
    if META not in archive.names():
        raise archive.error(f"not an ebm_ppl checkpoint: the zip archive has no {META}")
    meta = archive.read_json(META, allow_nan=True)
    if not isinstance(meta, dict):
        raise archive.error(f"{META} must hold a JSON object")
    impls = meta.get("key_impls", {})
    if not (isinstance(impls, dict) and all(isinstance(v, str) for v in impls.values())):
        raise archive.error(f"{META}: 'key_impls' must map leaf numbers to key implementation names")
    return meta


def _label(i: int, where: str) -> str:
    return f"array {i} {where}".rstrip()


def _expected(path: str, i: int, where: str, like: Any, impls: dict[str, str]) -> NpyMember:
    """What ``leaves/<i>.npy`` must hold to restore into the template leaf ``like``."""
    if is_key(like):
        stored_impl = impls.get(str(i), _impl_name(like))
        if stored_impl != _impl_name(like):
            raise ValueError(f"checkpoint {path!r}: array {i} is a {stored_impl} PRNG key, this run uses "
                             f"{_impl_name(like)} keys; resume with prng_impl={stored_impl!r}")
        want = jax.eval_shape(jax.random.key_data, like)
    else:
        want = like if isinstance(like, (jax.Array, np.ndarray)) else np.asarray(like)
    return NpyMember(f"leaves/{i}.npy", tuple(want.shape), np.dtype(want.dtype), _label(i, where))


def _check_values(path: str, label: str, arr: np.ndarray, like: Any) -> None:
    """No NaN in a floating leaf; infinities only where the template leaf holds one."""
    nan, inf = count_nonfinite(arr)
    if nan or (inf and not count_nonfinite(np.asarray(like))[1]):
        where = "" if nan else ", where this run's own state holds none"
        raise ValueError(f"checkpoint {path!r}: {label} contains {nan} NaN and {inf} infinite value(s){where}; "
                         "the checkpoint is damaged or was altered. Resume from another copy or train from scratch")
