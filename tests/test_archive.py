"""ebm_ppl.archive: round trips of .npy and JSON members, and every refusal made before data is read.

The decompression-bomb tests build, in about 1 MB, a zip whose member inflates to 1 GiB (the case
of issue 15: the old reader inflated it before any check). They assert that each reader refuses it
naming the member, quickly, and with a tracemalloc peak under 16 MiB: inflating even a tenth of
the member would exceed that bound by six times.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import struct
import time
import tracemalloc
import zipfile
import zlib

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from numpy.lib import format as npy_format

import ebm_ppl as ep
from ebm_ppl import archive
from ebm_ppl.archive import NpyMember
from ebm_ppl.training.checkpoint import load_checkpoint

GiB = 2**30
MEMORY_BOUND = 16 * 2**20


# -- helpers -----------------------------------------------------------------------------------
def _zip_bytes(entries, aliases=()) -> bytes:
    """A zip archive written by hand (PKWARE APPNOTE 4.3.7, 4.3.12, 4.3.16), so that it can hold
    what zipfile would not write. ``entries``: ``(name, method, flags, crc, size, payload)``;
    ``aliases``: ``(name, i)``, a further central-directory record for entry ``i``'s data."""
    out, records = bytearray(), []
    for name, method, flags, crc, size, payload in entries:
        common = struct.pack("<4H3L", flags, method, 0, 0x21, crc, len(payload), size)  # 0x21: 1980-01-01
        records.append((name, common, len(out)))
        out += struct.pack("<4sH", b"PK\x03\x04", 20) + common + struct.pack("<2H", len(name), 0)
        out += name.encode() + payload
    records += [(name, records[i][1], records[i][2]) for name, i in aliases]
    central = b"".join(struct.pack("<4s2H", b"PK\x01\x02", 20, 20) + common
                       + struct.pack("<5H2L", len(name), 0, 0, 0, 0, 0, offset) + name.encode()
                       for name, common, offset in records)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(records), len(records), len(central), len(out), 0)
    return bytes(out + central + end)


def _stored(name, data: bytes):
    return (name, zipfile.ZIP_STORED, 0, zlib.crc32(data), len(data), data)


def _npy_header(shape, descr="<f4") -> bytes:
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _bomb(name, header: bytes, mib: int = 1024):
    """Member ``name``: ``header`` then ``mib`` MiB of zeros, DEFLATE-compressed to ~1 KB per MiB
    (each MiB ends in a full flush, so one compressed MiB is repeated). Its CRC is left 0: a
    reader must refuse the member before reading any of it."""
    first = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = zeros.compress(bytes(2**20)) + zeros.flush(zlib.Z_FULL_FLUSH)
    payload = first.compress(header) + first.flush(zlib.Z_FULL_FLUSH) + block * mib + b"\x03\x00"
    return (name, zipfile.ZIP_DEFLATED, 0, 0, len(header) + mib * 2**20, payload)


def _assert_refused_fast_and_small(read, path, member):
    """``read(path)`` raises a ValueError naming ``member``, in seconds, allocating < 16 MiB."""
    with zipfile.ZipFile(path) as zf:  # control: the member is live and inflates to 1 GiB
        assert zf.getinfo(member).file_size > GiB
        with zf.open(member) as f:
            assert f.read(6) == b"\x93NUMPY"
    assert os.path.getsize(path) < 2 * 2**20
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ValueError, match=f"{member}.*compressed"):
            read(path)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, peak
    assert elapsed < 5.0, elapsed


def _write(path, members: dict):
    """An archive through write_archive: arrays via write_npy, anything else via write_json."""
    hashes = {}

    def write(zf):
        for name, value in members.items():
            if isinstance(value, np.ndarray):
                hashes[name] = archive.write_npy(zf, name, value)
            else:
                archive.write_json(zf, name, value)

    archive.write_archive(path, write)
    return hashes


def _open(path):
    return archive.open_archive(path, kind="test file", writer="a test")


def _read(path, *members, **kwargs):
    with _open(path) as a:
        return a.read_arrays(list(members), **kwargs)


# -- round trips -------------------------------------------------------------------------------
ARRAYS = {
    "float32": np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5,
    "scalar": np.array(-0.0, np.float64),
    "empty": np.zeros((0, 3), np.int32),
    "bool": np.array([True, False, True]),
    "complex": np.array([1 + 2j, -3j], np.complex64),
    "bfloat16": np.array([1.5, -2.0, 3.25], ml_dtypes.bfloat16),
    "fortran": np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)),
    "uint32": np.array([0, 2**32 - 1], np.uint32),
}


def test_npy_and_json_round_trip_bit_exact(tmp_path):
    path = tmp_path / "a.zip"
    hashes = _write(path, {f"{k}.npy": v for k, v in ARRAYS.items()} | {"meta.json": {"é": [1, 2.5]}})
    members = [NpyMember(f"{k}.npy", v.shape, v.dtype, k, hashes[f"{k}.npy"]) for k, v in ARRAYS.items()]
    with _open(path) as a:
        got = a.read_arrays(members)
        assert a.read_json("meta.json") == {"é": [1, 2.5]}
        assert a.names() == [*(m.name for m in members), "meta.json"]
    for (key, want), arr in zip(ARRAYS.items(), got):
        assert arr.dtype == want.dtype and arr.shape == want.shape, key
        assert arr.tobytes(order="A") == want.tobytes(order="A"), key


def test_same_content_same_bytes(tmp_path):
    for name in ("a.zip", "b.zip"):
        _write(tmp_path / name, {"x.npy": ARRAYS["float32"], "m.json": {"k": 1}})
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        for info in zf.infolist():
            assert info.compress_type == zipfile.ZIP_STORED and info.date_time == (1980, 1, 1, 0, 0, 0)


def test_json_limits_and_constants(tmp_path):
    path = tmp_path / "a.zip"
    path.write_bytes(_zip_bytes([_stored("m.json", b'{"x": NaN}')]))
    with _open(path) as a:
        with pytest.raises(ValueError, match="not valid JSON"):
            a.read_json("m.json")
        assert np.isnan(a.read_json("m.json", allow_nan=True)["x"])
        with pytest.raises(ValueError, match="m.json.*more than the 5"):
            a.read_json("m.json", max_bytes=5)
        with pytest.raises(ValueError, match="'other.json' is missing"):
            a.read_json("other.json")


# -- refusals before any data is read ----------------------------------------------------------
def test_decompression_bomb_refused_by_open_archive(tmp_path):
    path = tmp_path / "bomb.zip"
    path.write_bytes(_zip_bytes([_bomb("x.npy", _npy_header((GiB // 4,)))]))
    _assert_refused_fast_and_small(_open, path, "x.npy")


def test_decompression_bomb_refused_by_ep_load(tmp_path):
    """A model file declaring W as float32[16384, 16384] (1 GiB), the member inflating to exactly
    that: only the compression method gives it away."""
    small = tmp_path / "small.ebm"
    ep.save(small, ep.BernoulliRBM.init(jax.random.key(0), 16384, 1))
    with zipfile.ZipFile(small) as zf:
        meta = json.loads(zf.read("metadata.json"))
        others = [_stored(n, zf.read(n)) for n in ("arrays/1.npy", "arrays/2.npy")]
    meta["arrays"][0]["shape"] = [16384, 16384]
    bomb = _bomb("arrays/0.npy", _npy_header((16384, 16384)))
    path = tmp_path / "bomb.ebm"
    path.write_bytes(_zip_bytes([bomb, *others, _stored("metadata.json", json.dumps(meta).encode())]))
    _assert_refused_fast_and_small(ep.load, path, "arrays/0.npy")
    _assert_refused_fast_and_small(ep.io.load_metadata, path, "arrays/0.npy")


def test_decompression_bomb_refused_by_load_checkpoint(tmp_path):
    template = {"W": jnp.zeros((4, 4)), "step": jnp.array(0)}  # the file is refused before it is used
    meta = {"num_leaves": 2, "key_impls": {}, "epoch": 0}
    path = tmp_path / "bomb.ckpt"
    path.write_bytes(_zip_bytes([_bomb("leaves/0.npy", _npy_header((16384, 16384))),
                                 _stored("leaves/1.npy", _npy_bytes(np.array(0, np.int32))),
                                 _stored("meta.json", json.dumps(meta).encode())]))
    _assert_refused_fast_and_small(lambda p: load_checkpoint(p, template), path, "leaves/0.npy")


def _npy_bytes(arr):
    buf = io.BytesIO()
    npy_format.write_array(buf, arr, allow_pickle=False)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("x.npy", 0, 0, 0, 10**9, _npy_bytes(np.zeros(3)))], "claims 1000000000 bytes but takes"),
        ([_stored("x.npy", _npy_bytes(np.zeros(3))), _stored("x.npy", b"")], "'x.npy' is listed twice"),
        ([("x.npy", 0, 1, 0, 10, bytes(10))], "'x.npy' is encrypted"),
        ([("x.npy", zipfile.ZIP_BZIP2, 0, 0, 10, bytes(10))], "'x.npy' is compressed"),
    ],
)
def test_member_table_refusals(tmp_path, entries, message):
    path = tmp_path / "a.zip"
    path.write_bytes(_zip_bytes(entries))
    with pytest.raises(ValueError, match=message):
        _open(path)


def test_overlapping_members_refused(tmp_path):
    """Two central-directory records for the same 1 MiB of data claim 2 MiB in a 1 MiB file (the
    way non-recursive zip bombs multiply their data)."""
    path = tmp_path / "a.zip"
    path.write_bytes(_zip_bytes([_stored("a.npy", _npy_bytes(np.zeros(2**17)))], aliases=[("b.npy", 0)]))
    with zipfile.ZipFile(path) as zf:  # control: zipfile itself lists both
        assert zf.namelist() == ["a.npy", "b.npy"]
    with pytest.raises(ValueError, match=r"the members claim 2097408 bytes, more than the file's 1048863"):
        _open(path)


def test_member_larger_than_its_dtype_and_shape_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "a.zip"
    _write(path, {"x.npy": np.zeros(10**5, np.float32)})
    monkeypatch.setattr(zipfile.ZipFile, "open", None)  # any read would fail with a TypeError
    with pytest.raises(ValueError, match=r"array x \(x.npy\) is 400128 bytes, more than the 4104.*settings"):
        _read(path, NpyMember("x.npy", (2,), np.dtype(np.float32), "array x"), mismatch="; other settings")


@pytest.mark.parametrize(
    ("stored", "expected", "message"),
    [
        (np.zeros((2, 3), np.float32), ((3, 2), np.float32), r"has shape \(2, 3\), expected \(3, 2\)!"),
        (np.zeros(6, np.float32), ((6,), np.int32), "has dtype float32, expected int32!"),
        (np.zeros(3, ">f4"), ((3,), np.float32), "has dtype >f4, expected float32!"),
        (np.array([None, 1], object), ((2,), np.float64), "object array, which would need unpickling"),
    ],
)
def test_npy_header_mismatch_refused(tmp_path, stored, expected, message):
    path = tmp_path / "a.zip"
    data = io.BytesIO()
    npy_format.write_array(data, stored, allow_pickle=True)
    path.write_bytes(_zip_bytes([_stored("x.npy", data.getvalue())]))
    with pytest.raises(ValueError, match=message):
        _read(path, NpyMember("x.npy", expected[0], np.dtype(expected[1]), "array x"), mismatch="!")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not an npy file at all", "not a valid .npy file"),
        (_npy_bytes(np.zeros(4, np.float32))[:-3], "truncated"),
        (_npy_bytes(np.zeros(4, np.float32)) + b"\0", "bytes after its array data"),
    ],
)
def test_bad_npy_members_refused(tmp_path, data, message):
    path = tmp_path / "a.zip"
    path.write_bytes(_zip_bytes([_stored("x.npy", data)]))
    with pytest.raises(ValueError, match=message):
        _read(path, NpyMember("x.npy", (4,), np.dtype(np.float32), "array x"))


def test_sha256_and_crc_checked(tmp_path):
    path = tmp_path / "a.zip"
    arr = np.arange(5, dtype=np.float32)
    sha = _write(path, {"x.npy": arr})["x.npy"]
    member = NpyMember("x.npy", (5,), np.dtype(np.float32), "array x", sha)
    with pytest.raises(ValueError, match="fails its sha256 check"):
        _read(path, member._replace(sha256="0" * 64))
    blob = bytearray(path.read_bytes())
    blob[blob.find(arr.tobytes()) + 5] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="corrupted.*CRC"):
        _read(path, member)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x80\x04K\x01.", "Python pickle"),
        (_npy_bytes(np.zeros(2)), "bare .npy array, not an ebm_ppl test file"),
        (b"hello", "not an ebm_ppl test file"),
        (b"PK\x03\x04" + bytes(20), "corrupted or truncated"),
    ],
)
def test_not_an_archive_refused(tmp_path, content, message):
    path = tmp_path / "a.zip"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        _open(path)


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_pipe_refused_without_blocking(tmp_path):
    path = tmp_path / "pipe.ebm"
    os.mkfifo(path)
    with pytest.raises(ValueError, match="not a regular file"):
        ep.load(path)  # opening a pipe with no writer would block forever


def test_missing_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such test file"):
        _open(tmp_path / "nope")
    with pytest.raises(IsADirectoryError):
        _open(tmp_path)


# -- atomic_write ------------------------------------------------------------------------------
def test_permission_error_names_the_target(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".m.ebm.1.abcdefgh.tmp"))

    monkeypatch.setattr(archive.tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError, match=r"cannot write '.*m\.ebm': its directory is not writable") as info:
        archive.atomic_write(tmp_path / "m.ebm", lambda tmp: None)
    assert info.value.filename == str(tmp_path / "m.ebm")


@pytest.mark.skipif(os.name != "posix", reason="temp files are tagged with POSIX process ids")
def test_stale_temp_files_of_dead_writers_removed(tmp_path):
    """A save killed mid-write leaves ``.<name>.<pid>.<random>.tmp``; the next save of that name
    removes it when process ``pid`` no longer exists, and nothing else."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".m.ebm.{int(dead.stdout)}.abcdefgh.tmp"
    kept = [tmp_path / f".m.ebm.{os.getppid()}.abcdefgh.tmp",  # a live process (our parent)
            tmp_path / ".m.ebm.abcdefgh.tmp",  # not our naming
            tmp_path / f".other.ebm.{int(dead.stdout)}.abcdefgh.tmp"]  # another target
    for p in (stale, *kept):
        p.write_bytes(b"partial")
    archive.atomic_write(tmp_path / "m.ebm", lambda tmp: open(tmp, "wb").write(b"new"))
    assert not stale.exists()
    assert all(p.exists() for p in kept)
    assert (tmp_path / "m.ebm").read_bytes() == b"new"


def test_failed_write_leaves_nothing(tmp_path):
    def fail(tmp):
        open(tmp, "wb").write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        archive.atomic_write(tmp_path / "m.ebm", fail)
    assert list(tmp_path.iterdir()) == []
