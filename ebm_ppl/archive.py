"""Zip archives of ``.npy`` arrays and JSON members: written atomically, read without pickles.

The layer under ebm_ppl's two file formats, model files (:mod:`ebm_ppl.io`, whose docstring
specifies that format) and training checkpoints (:mod:`ebm_ppl.training.checkpoint`). Every file
ebm_ppl writes goes through :func:`atomic_write`.

Writing (:func:`write_archive`, :func:`write_npy`, :func:`write_json`): members are stored
uncompressed, dated 1980-01-01 00:00 with mode 0644 (the same content gives the same bytes);
arrays are streamed with ``numpy.lib.format.write_array(..., allow_pickle=False)`` and hashed.

Reading (:func:`open_archive`, then :class:`Archive`'s methods) checks, before reading any data:

- the path is a regular file (a pipe or device is refused, not waited on) and a zip archive;
  pickles, bare ``.npy`` files and anything else are refused by their first bytes;
- every member is stored (zip method 0, not encrypted), its compressed size equals its size, no
  name appears twice, and the sizes sum to at most the file's size: nothing read can take more
  memory than the file takes on disk, and compressed members (decompression bombs) are refused
  without inflating a byte;
- a member read is at most the size its format allows: a JSON member a given bound, a ``.npy``
  member its expected dtype and shape plus ``NPY_HEADER_LIMIT`` bytes (all the members of one
  :meth:`Archive.read_arrays` call before the first is read); a ``.npy`` header (version 1.0 or
  2.0) must declare the expected dtype and shape, and no object dtype, before the data is read;
  the member must end with the data, and its CRC-32 (and sha256, when given) must match.

Every refusal is a :class:`ValueError` reading ``cannot load '<path>': <problem>``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import stat
import struct
import tempfile
import zipfile
import zlib
from typing import Any, BinaryIO, Callable, NamedTuple, Sequence

import jax
import numpy as np
from numpy.lib import format as npy_format

__all__ = [
    "atomic_write", "write_archive", "write_npy", "write_json", "open_archive", "Archive", "NpyMember",
    "load_error", "count_nonfinite", "NPY_HEADER_LIMIT", "JSON_LIMIT",
]

#: The most bytes a ``.npy`` member may hold beyond its array data (ebm_ppl writes 128).
NPY_HEADER_LIMIT = 4096
#: Default bound on a JSON member's size.
JSON_LIMIT = 64 * 2**20
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)
_CHUNK = 2**20
_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, struct.error, NotImplementedError, RuntimeError)
_TEMP_TAIL = re.compile(r"(\d+)\.[a-z0-9_]{8}\.tmp")  # after ".<target name>.": "<pid>.<random>.tmp"


# -- writing -----------------------------------------------------------------------------------
def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it onto ``path``.

    The temporary file (``.<name>.<pid>.<random>.tmp``) is fsynced, given the permissions of the
    file it replaces (or what ``open()`` would give a new file), renamed over ``path`` with
    :func:`os.replace` and the directory fsynced, so a reader sees the old file or the new one,
    never half of one. On any failure, Ctrl-C included, the temporary file is removed and
    ``path`` is left as it was; temporary files for ``path`` left by processes that no longer
    run (killed mid-write) are removed first. The directory of ``path`` must exist.

    Raises:
        PermissionError: the directory is not writable (the message names ``path``).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    _remove_stale_temps(directory, name)
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.{os.getpid()}.", suffix=".tmp")
    except PermissionError:
        raise PermissionError(errno.EACCES, f"cannot write {path!r}: its directory is not writable", path) from None
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def write_archive(path: str | os.PathLike, write: Callable[[zipfile.ZipFile], None]) -> None:
    """Write a zip archive to ``path`` atomically: ``write(zf)`` adds the members, with
    :func:`write_npy` and :func:`write_json`, to an open, uncompressed ``zipfile.ZipFile``."""

    def write_zip(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            write(zf)

    atomic_write(path, write_zip)


def write_npy(zf: zipfile.ZipFile, name: str, arr: np.ndarray) -> str:
    """Stream ``arr`` (a numeric numpy array of any shape) into member ``name`` as a ``.npy``
    file; return the sha256 hex digest of the member's bytes."""
    with zf.open(_member_info(name), "w", force_zip64=arr.nbytes > 2**30) as member:
        sink = _Hashing(member)
        npy_format.write_array(sink, arr, allow_pickle=False)
    return sink.sha.hexdigest()


def write_json(zf: zipfile.ZipFile, name: str, value: Any, *, indent: int | None = None,
               allow_nan: bool = False) -> None:
    """Write ``value`` as member ``name``: UTF-8 JSON, non-ASCII characters kept as they are.
    Raises ``ValueError`` for NaN or infinities unless ``allow_nan``, ``TypeError`` for non-JSON."""
    text = json.dumps(value, indent=indent, allow_nan=allow_nan, ensure_ascii=False)
    zf.writestr(_member_info(name), text.encode("utf-8"))


class _Hashing:
    """File-like wrapper that hashes what is written to, or read from, ``inner``."""

    def __init__(self, inner: BinaryIO):
        self.inner = inner
        self.sha = hashlib.sha256()

    def write(self, data) -> int:
        data = memoryview(data).cast("B")
        self.sha.update(data)
        return self.inner.write(data)

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.sha.update(data)
        return data


def _member_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def _file_mode(path: str) -> int:
    """Keep an existing file's permissions; otherwise what ``open()`` would give (0o666 & ~umask)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _remove_stale_temps(directory: str, name: str) -> None:
    """Remove ``.<name>.<pid>.<random>.tmp`` files whose writing process no longer exists."""
    if os.name != "posix":  # os.kill(pid, 0) probes a process only on POSIX
        return
    prefix = f".{name}."
    with contextlib.suppress(OSError):
        for entry in os.listdir(directory):
            match = _TEMP_TAIL.fullmatch(entry[len(prefix):]) if entry.startswith(prefix) else None
            if match and int(match.group(1)) not in (0, os.getpid()) and _process_gone(int(match.group(1))):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(directory, entry))


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: it exists, owned by another user
        pass
    return False


def _fsync_directory(directory: str) -> None:
    """Make the rename durable where the platform allows it (best effort)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- reading -----------------------------------------------------------------------------------
def load_error(path: str, problem: str) -> ValueError:
    """The error every reader raises for a file it refuses: ``cannot load '<path>': <problem>``."""
    return ValueError(f"cannot load {path!r}: {problem}")


def count_nonfinite(arr: np.ndarray) -> tuple[int, int]:
    """``(number of NaNs, number of infinities)`` in ``arr``; ``(0, 0)`` for non-float dtypes."""
    if not jax.dtypes.issubdtype(arr.dtype, np.inexact):
        return 0, 0
    return int(np.count_nonzero(np.isnan(arr))), int(np.count_nonzero(np.isinf(arr)))


class NpyMember(NamedTuple):
    """A ``.npy`` member to read: its ``name`` in the archive, the ``shape`` and ``dtype`` it must
    hold, how messages call it (``label``) and, optionally, the sha256 of its bytes."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    label: str
    sha256: str | None = None


class Archive:
    """A zip archive opened by :func:`open_archive`, its members already checked (module doc)."""

    def __init__(self, path: str, file: BinaryIO, zf: zipfile.ZipFile):
        self.path, self._file, self._zf = path, file, zf
        self._check_members(os.fstat(file.fileno()).st_size)

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc_info) -> None:
        self._zf.close()
        self._file.close()

    def error(self, problem: str) -> ValueError:
        """:func:`load_error` for this archive's path."""
        return load_error(self.path, problem)

    def names(self) -> list[str]:
        """The member names, in archive order."""
        return self._zf.namelist()

    def read_json(self, name: str, max_bytes: int = JSON_LIMIT, *, allow_nan: bool = False) -> Any:
        """The JSON value in member ``name`` (at most ``max_bytes``, UTF-8); NaN and Infinity are
        refused unless ``allow_nan``."""
        data = self._read_bytes(self._member(name, max_bytes, f"member {name!r}"))
        try:
            return json.loads(data.decode("utf-8"), parse_constant=None if allow_nan else _refuse_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise self.error(f"{name} is not valid JSON ({exc})") from None

    def read_arrays(self, members: Sequence[NpyMember], *, mismatch: str = "") -> list[np.ndarray]:
        """Read ``.npy`` members; every member's size is checked before any is read.

        Args:
            members: what to read; ml_dtypes (``bfloat16``, ...) are expected stored as raw bytes
                (``|V2``) and are reinterpreted.
            mismatch: appended to the message when a member holds another dtype or shape.

        Returns:
            One numpy array per member, of its ``shape`` and ``dtype``.
        """
        limits = [math.prod(m.shape) * m.dtype.itemsize + NPY_HEADER_LIMIT for m in members]
        infos = [self._member(m.name, limit, f"{m.label} ({m.name})", mismatch) for m, limit in zip(members, limits)]
        return [self._read_npy(info, m, mismatch) for info, m in zip(infos, members)]

    def _check_members(self, file_size: int) -> None:
        """Every member stored, unencrypted, listed once, and all of them within the file's size."""
        infos = self._zf.infolist()
        total, seen = 0, set()
        for info in infos:
            name = info.filename
            if name in seen:
                raise self.error(f"member {name!r} is listed twice (the file was altered)")
            seen.add(name)
            if info.flag_bits & 0x1:
                raise self.error(f"member {name!r} is encrypted; ebm_ppl writes plain members only")
            if info.compress_type != zipfile.ZIP_STORED:
                raise self.error(
                    f"member {name!r} is compressed (zip method {info.compress_type}, {info.compress_size} bytes "
                    f"inflating to {info.file_size}); ebm_ppl stores members uncompressed and does not inflate "
                    "them, since a compressed member can need far more memory than the file's size"
                )
            if info.compress_size != info.file_size:
                raise self.error(f"member {name!r} claims {info.file_size} bytes but takes {info.compress_size}")
            total += info.file_size
        if total > file_size:
            raise self.error(f"the members claim {total} bytes, more than the file's {file_size} (it was altered)")

    def _member(self, name: str, max_bytes: int, what: str, mismatch: str = "") -> zipfile.ZipInfo:
        try:
            info = self._zf.getinfo(name)
        except KeyError:
            raise self.error(f"member {name!r} is missing (the file is corrupted or truncated)") from None
        if info.file_size > max_bytes:
            raise self.error(f"{what} is {info.file_size} bytes, more than the {max_bytes} it may take{mismatch}")
        return info

    def _read_bytes(self, info: zipfile.ZipInfo) -> bytes:
        try:
            data = self._zf.read(info)
        except _CORRUPT as exc:
            raise self.error(f"member {info.filename!r} is corrupted ({exc})") from None
        if len(data) != info.file_size:
            raise self.error(f"member {info.filename!r} is truncated")
        return data

    def _read_npy(self, info: zipfile.ZipInfo, member: NpyMember, mismatch: str) -> np.ndarray:
        what = f"{member.label} ({member.name})"
        try:
            with self._zf.open(info) as raw:
                f = _Hashing(raw)
                shape, fortran, dtype = self._npy_header(f, what)
                if dtype.hasobject:
                    raise self.error(f"{what} holds an object array, which would need unpickling; "
                                     "ebm_ppl never unpickles")
                raw_bytes = dtype.kind == member.dtype.kind == "V" and not dtype.fields
                if raw_bytes and dtype.itemsize == member.dtype.itemsize:
                    dtype = member.dtype  # ml_dtypes (bfloat16, ...) travel as raw bytes
                if dtype != member.dtype:
                    raise self.error(f"{what} has dtype {dtype}, expected {member.dtype}{mismatch}")
                if shape != tuple(member.shape):
                    raise self.error(f"{what} has shape {shape}, expected {tuple(member.shape)}{mismatch}")
                arr = np.empty(shape[::-1] if fortran else shape, dtype)
                self._read_into(f, arr.reshape(-1).view(np.uint8), what)
                if f.read(1):
                    raise self.error(f"{what} holds bytes after its array data")
        except _CORRUPT as exc:
            raise self.error(f"{what} is corrupted ({exc})") from None
        if member.sha256 is not None and f.sha.hexdigest() != member.sha256:
            raise self.error(f"{what} fails its sha256 check: the file is corrupted")
        return arr.T if fortran else arr

    def _npy_header(self, f: _Hashing, what: str) -> tuple[tuple[int, ...], bool, np.dtype]:
        try:
            version = npy_format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"unsupported .npy version {version}")
            read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            return read(f, max_header_size=NPY_HEADER_LIMIT)
        except (ValueError, SyntaxError, TypeError) as exc:
            raise self.error(f"{what} is not a valid .npy file ({exc})") from None

    def _read_into(self, f: _Hashing, out: np.ndarray, what: str) -> None:
        """Fill the bytes ``out`` from ``f``, one bounded chunk at a time."""
        pos = 0
        while pos < out.size:
            chunk = f.read(min(_CHUNK, out.size - pos))
            if not chunk:
                raise self.error(f"{what} is truncated")
            out[pos:pos + len(chunk)] = np.frombuffer(chunk, np.uint8)
            pos += len(chunk)


def _refuse_constant(name: str):
    raise ValueError(f"non-standard JSON constant {name}")


def open_archive(path: str | os.PathLike, *, kind: str, writer: str) -> Archive:
    """Open ``path`` for reading after the checks of the module docstring (its first two points).

    ``kind`` says what the file should be and ``writer`` what writes one, for messages
    (``kind="model file", writer="ebm_ppl.save"``). Returns an :class:`Archive`, a context
    manager that closes the file.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IsADirectoryError: ``path`` is a directory.
        ValueError: anything else refused.
    """
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"no such {kind}", path) from None
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, f"expected a {kind}, got a directory", path)
    if not stat.S_ISREG(mode):
        raise load_error(path, f"not a regular file (a pipe, socket or device); an ebm_ppl {kind} is read "
                               "only from a regular file")
    file = open(path, "rb")
    try:
        magic = file.read(6)
        if magic[:1] == b"\x80":
            raise load_error(path, "the file is a Python pickle; ebm_ppl never loads pickles (it could run "
                                   "arbitrary code)")
        if magic == b"\x93NUMPY":
            raise load_error(path, f"the file is a bare .npy array, not an ebm_ppl {kind} (write one with {writer})")
        if magic[:4] not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise load_error(path, f"not an ebm_ppl {kind} (not a zip archive; write one with {writer})")
        try:
            zf = zipfile.ZipFile(file, "r")
        except _CORRUPT as exc:
            raise load_error(path, f"the file is corrupted or truncated (bad zip archive: {exc})") from None
        return Archive(path, file, zf)
    except BaseException:
        file.close()
        raise
