"""The compiled engine's BGZF reader: the bytes htslib gives from any virtual offset, and a clear OSError (which
counting reports as a truncated or corrupt file) for any block that is not what it claims."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pysam
import pytest

from mrdtrack.counting import bgzf
from mrdtrack.counting.bgzf import BgzfReader


def _bgzf_file(path: Path, size: int = 300_000, seed: int = 1) -> bytes:
    """A BGZF file (htslib's writer: blocks of at most 64 kB, the EOF block) of `size` random-ish bytes."""
    rng = np.random.default_rng(seed)
    data = bytes(rng.choice(list(b"ACGT\t\n0123"), size).astype(np.uint8))
    with pysam.BGZFile(str(path), "wb") as out:
        out.write(data)
    return data


def _blocks(path: Path) -> list[tuple[int, int]]:
    """(file offset, inflated size) of each block."""
    raw, blocks, at = path.read_bytes(), [], 0
    while at < len(raw):
        end = at + struct.unpack_from("<H", raw, at + 16)[0] + 1
        blocks.append((at, struct.unpack_from("<I", raw, end - 4)[0]))
        at = end
    return blocks


def _block(data: bytes, extra: bytes = b"") -> bytes:
    """One BGZF block of `data`, with `extra` subfields before its BC field."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = compressor.compress(data) + compressor.flush()
    extra_field = extra + b"BC" + struct.pack("<HH", 2, 12 + len(extra) + 6 + len(body) + 8 - 1)
    header = b"\x1f\x8b\x08\x04" + b"\x00" * 4 + b"\x00\xff" + struct.pack("<H", len(extra_field))
    return header + extra_field + body + struct.pack("<II", zlib.crc32(data), len(data))


@pytest.fixture(params=["whole file", "40 kB", "40 kB, Python inflate"])
def read_by(request, monkeypatch):
    """The reader as it is; reading 40 kB of the file at a time, so that blocks (about 27 kB here) straddle its
    reads; and so with libdeflate's Python API instead of its C function (when a `deflate` build does not
    export it)."""
    if request.param != "whole file":
        monkeypatch.setattr(bgzf, "CHUNK", 40_000)
    if request.param.endswith("Python inflate"):
        monkeypatch.setattr(bgzf, "_libdeflate", lambda: None)
    return request.param


def test_inflates_through_libdeflates_c_function_where_the_deflate_package_exports_it():
    assert bgzf._libdeflate() is not None


def test_reads_what_htslib_reads_from_every_block_and_offset_within_it(tmp_path, read_by):
    path = tmp_path / "data.gz"
    data = _bgzf_file(path)
    blocks = _blocks(path)
    assert len(blocks) > 4 and blocks[-1][1] == 0  # several blocks, and the EOF block
    with pysam.BGZFile(str(path), "rb") as htslib:
        reader = BgzfReader(str(path))
        for start, inflated in blocks:
            for within in (w for w in (0, 1, 1000) if w < max(inflated, 1)):
                virtual = start << 16 | within
                htslib.seek(virtual)
                reader.seek(virtual)
                for size in (1, 70_000, 5, 1 << 20):  # within, across and past blocks, to the end
                    assert reader.read(size) == htslib.read(size)
                assert reader.read(10) == b""
        reader.close()
    reader = BgzfReader(str(path))
    reader.seek(0)
    assert reader.read(len(data) + 1) == data


def test_blocks_with_other_extra_subfields_are_read(tmp_path, read_by):
    path = tmp_path / "extra.gz"
    path.write_bytes(
        _block(b"first block", extra=b"XY" + struct.pack("<H", 3) + b"abc") + _block(b", second")
    )
    reader = BgzfReader(str(path))
    reader.seek(0)
    assert reader.read(100) == b"first block, second"


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda raw: raw[: len(raw) // 2], "truncated"),
        (lambda raw: b"PK\x03\x04" + raw[4:], "not a BGZF block"),
        (lambda raw: raw[:40] + bytes(b ^ 0xFF for b in raw[40:60]) + raw[60:], "inflate|CRC32"),
        (lambda raw: raw[:-8] + struct.pack("<I", 12345) + raw[-4:], "CRC32"),
        (lambda raw: raw[:12] + b"XY" + raw[14:], "BC field"),
    ],
    ids=["truncated", "not BGZF", "corrupt data", "wrong CRC", "no BC field"],
)
def test_a_damaged_block_raises_os_error_saying_what_is_wrong(tmp_path, damage, expected, read_by):
    path = tmp_path / "damaged.gz"
    path.write_bytes(damage(_block(bytes(range(256)) * 40)))
    reader = BgzfReader(str(path))
    reader.seek(0)
    with pytest.raises(OSError, match=expected):
        reader.read(1 << 16)
