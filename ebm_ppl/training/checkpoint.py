"""Training checkpoints: any pytree of arrays (PRNG keys included) plus JSON, atomic, no pickle.

A checkpoint is a zip of ``.npy`` leaves in flatten order and ``meta.json``. Loading needs a
template pytree of the same structure (the training loop rebuilds one from its arguments), so
nothing but arrays and JSON is ever read back. PRNG keys are stored as their raw data with the
name of their implementation (``threefry2x32``, ``philox2x32_64``, ...) in the metadata; a key is
restored only into a template key of the same implementation.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import Any

import jax
import numpy as np

from ebm_ppl.archive import atomic_write

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint_metadata", "META"]

#: The member holding the checkpoint's JSON metadata.
META = "meta.json"


def _is_key(leaf: Any) -> bool:
    return isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _impl_name(key: jax.Array) -> str:
    return str(jax.random.key_impl(key))


def save_checkpoint(path: str | os.PathLike, tree: Any, meta: dict[str, Any]) -> None:
    """Write ``tree``'s array leaves and ``meta`` (JSON) to ``path`` atomically."""
    path = os.fspath(path)
    leaves = jax.tree.leaves(tree)
    key_impls = {str(i): _impl_name(leaf) for i, leaf in enumerate(leaves) if _is_key(leaf)}

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for i, leaf in enumerate(leaves):
                arr = np.asarray(jax.random.key_data(leaf) if _is_key(leaf) else leaf)
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, arr, allow_pickle=False)
                zf.writestr(f"leaves/{i}.npy", buffer.getvalue())
            zf.writestr(META, json.dumps(dict(meta, num_leaves=len(leaves), key_impls=key_impls), allow_nan=True))

    atomic_write(path, write)


def load_checkpoint(path: str | os.PathLike, template: Any) -> tuple[Any, dict[str, Any]]:
    """Read a checkpoint into ``template``'s structure; check every leaf's shape and dtype."""
    path = os.fspath(path)
    leaves, treedef = jax.tree.flatten(template)
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read(META))
            if meta.get("num_leaves") != len(leaves):
                raise ValueError(f"checkpoint {path!r} holds {meta.get('num_leaves')} arrays, this training "
                                 f"run has {len(leaves)}: it was written with other settings")
            restored = []
            stored_impls = meta.get("key_impls", {})  # absent in checkpoints written before it was kept
            for i, like in enumerate(leaves):
                if _is_key(like) and stored_impls.get(str(i), _impl_name(like)) != _impl_name(like):
                    raise ValueError(f"checkpoint {path!r}: array {i} is a {stored_impls[str(i)]} PRNG key, this "
                                     f"run uses {_impl_name(like)} keys; resume with "
                                     f"prng_impl={stored_impls[str(i)]!r}")
                arr = np.lib.format.read_array(io.BytesIO(zf.read(f"leaves/{i}.npy")), allow_pickle=False)
                want = jax.random.key_data(like) if _is_key(like) else np.asarray(like)
                if arr.shape != want.shape or arr.dtype != want.dtype:
                    raise ValueError(f"checkpoint {path!r}: array {i} is {arr.dtype}{list(arr.shape)}, expected "
                                     f"{want.dtype}{list(want.shape)}; it was written with other settings")
                restored.append(jax.random.wrap_key_data(arr, impl=jax.random.key_impl(like))
                                if _is_key(like) else jax.numpy.asarray(arr))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"checkpoint {path!r} is damaged or not a checkpoint: {exc}") from None
    return jax.tree.unflatten(treedef, restored), meta


def read_checkpoint_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of a checkpoint (``epoch``, ``records``, ...), without reading its arrays.

    Raises:
        ValueError: the file is damaged or not a checkpoint.
    """
    path = os.fspath(path)
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read(META))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as exc:
        raise ValueError(f"checkpoint {path!r} is damaged or not a checkpoint: {exc}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"checkpoint {path!r} is damaged or not a checkpoint: its metadata is not an object")
    return meta
