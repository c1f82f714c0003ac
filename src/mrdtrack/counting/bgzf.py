"""A BAM file's decompressed stream, its BGZF blocks inflated by libdeflate (the `deflate` package).

The compiled engine parses the records itself (bamscan.py); htslib's reader, as pysam builds it, inflates with
zlib: 1.2 s of CPU per GB of a genome-wide plasma BAM's records, where libdeflate takes 0.34 s. A genome-wide
BAM has tens of thousands of blocks per patient's share, so the work per block matters too: each is inflated
straight into the buffer `read` returns (libdeflate called through ctypes, as the `deflate` package links it;
its Python API returns a new object per block, which then had to be joined), and its header is read with one
`struct` call. Each block is checked as htslib checks it: its header, its size, its CRC32; a block that fails
raises OSError, which counting reports as a truncated or corrupt file.
"""

from __future__ import annotations

import ctypes
import struct

import deflate
import numpy as np

MAGIC = b"\x1f\x8b\x08\x04"  # gzip, deflate, FEXTRA: every BGZF block starts so
HEADER = 12  # bytes before the extra field
FOOTER = 8  # CRC32 and the inflated size
CHUNK = 1 << 20  # compressed bytes read from the file at a time
MAX_BLOCK = 1 << 16  # a block's inflated bytes at most
_USUAL = struct.Struct("<4s6xH2sHH")  # magic, extra length, first subfield's id, its length, BSIZE
_FOOTER = struct.Struct("<II")


class BgzfReader:
    """Read a BGZF file's decompressed bytes from a virtual offset (as pysam.BGZFile's `seek` and `read`)."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 (closed by `close`, as the reader is held open)
        self._raw = np.zeros(0, dtype=np.uint8)  # compressed bytes read and not yet inflated, from self._at
        self._at = 0
        self._left = np.zeros(0, dtype=np.uint8)  # inflated bytes of the last block not yet returned
        self._inflate = _Inflater()

    def close(self) -> None:
        self._file.close()

    def seek(self, virtual_offset: int) -> None:
        """Go to a virtual offset: the file offset of a block << 16 | the offset within its inflated bytes."""
        self._file.seek(virtual_offset >> 16)
        self._raw, self._at, self._left = self._raw[:0], 0, self._left[:0]
        within = virtual_offset & 0xFFFF
        if within:
            block = np.empty(MAX_BLOCK, dtype=np.uint8)
            size = self._next_block(block, 0, MAX_BLOCK)
            if size is None or size < within:
                raise OSError("a virtual offset past the end of its BGZF block")
            self._left = block[within:size]

    def read(self, size: int) -> memoryview:
        """Up to `size` inflated bytes (fewer only at the end of the file; empty there), as a read-only view."""
        out = np.empty(size, dtype=np.uint8)
        have = self._take_left(out, 0)
        while have < size:
            inflated = self._next_block(out, have, size - have)
            if inflated is None:
                break
            # a block that did not fit went to `self._left`: its first bytes are taken from there
            have += self._take_left(out, have) if inflated > size - have else inflated
        # read-only, as bytes were: the compiled record kernel then sees one array type, whichever path it came by
        return memoryview(out[:have]).toreadonly()

    def _take_left(self, out: np.ndarray, at: int) -> int:
        """Move what `out[at:]` has room for from the inflated bytes not yet returned; how many."""
        taken = min(len(out) - at, len(self._left))
        out[at : at + taken], self._left = self._left[:taken], self._left[taken:]
        return taken

    def _next_block(self, out: np.ndarray, at: int, room: int) -> int | None:
        """Inflate the next block to out[at:] if it fits in `room` bytes, else to `self._left`; its inflated size
        (None at the end of the file)."""
        if self._at_end():
            return None
        block_size, extra_length = self._block_bounds()
        data = self._compressed(block_size)
        crc, inflated_size = _FOOTER.unpack_from(data, block_size - FOOTER)
        if inflated_size > MAX_BLOCK:
            raise OSError("a BGZF block whose CRC32 or size does not match its data")
        if inflated_size > room:
            self._left = out = np.empty(inflated_size, dtype=np.uint8)
            at = 0
        body = data[HEADER + extra_length : block_size - FOOTER]
        if not self._inflate(body, out, at, inflated_size):
            raise OSError("a BGZF block that does not inflate")
        if deflate.crc32(out[at : at + inflated_size]) != crc:
            raise OSError("a BGZF block whose CRC32 or size does not match its data")
        self._at += block_size
        return inflated_size

    def _block_bounds(self) -> tuple[int, int]:
        """The current block's size and its extra field's length, from its header."""
        header = self._compressed(HEADER + 6)  # no block is shorter
        magic, extra_length, subfield, length, bsize = _USUAL.unpack_from(header)
        usual = subfield == b"BC" and length == 2 and extra_length >= 6 and magic == MAGIC
        if usual and bsize + 1 >= HEADER + extra_length + FOOTER:
            return bsize + 1, extra_length
        if magic != MAGIC:
            raise OSError("not a BGZF block: its header is not gzip with an extra field")
        block_size = _block_size(self._compressed(HEADER + extra_length)[HEADER:])
        if block_size is None or block_size < HEADER + extra_length + FOOTER:
            raise OSError("a BGZF block without a valid BC field (its size)")
        return block_size, extra_length

    def _at_end(self) -> bool:
        """Whether the file ends where the current block would start."""
        if self._at < len(self._raw):
            return False
        self._raw, self._at = np.frombuffer(self._file.read(CHUNK), dtype=np.uint8), 0
        return not len(self._raw)

    def _compressed(self, size: int) -> memoryview:
        """`size` compressed bytes from the current block's start, without consuming them; an OSError when the
        file ends before them."""
        end = self._at + size
        if len(self._raw) < end:
            more = np.frombuffer(self._file.read(max(CHUNK, end - len(self._raw))), dtype=np.uint8)
            self._raw, self._at = np.concatenate([self._raw[self._at :], more]), 0
            end = size
            if len(self._raw) < end:
                raise OSError("a truncated BGZF block")
        return memoryview(self._raw[self._at : end])


class _Inflater:
    """Inflate raw DEFLATE data of a known inflated size into a numpy buffer: libdeflate's own function where the
    `deflate` package exposes it (no copy), else the package's Python API and one copy."""

    def __init__(self) -> None:
        self._library = _libdeflate()
        self._decompressor = self._library.libdeflate_alloc_decompressor() if self._library else None

    def __call__(self, body: memoryview, out: np.ndarray, at: int, size: int) -> bool:
        """Whether `body` inflates to exactly `size` bytes, written to out[at:at + size]."""
        if self._decompressor is None:
            try:
                data = deflate.deflate_decompress(body, size)
            except deflate.DeflateError:
                return False
            out[at : at + len(data)] = np.frombuffer(data, dtype=np.uint8)
            return len(data) == size
        source = np.frombuffer(body, dtype=np.uint8)
        status = self._library.libdeflate_deflate_decompress(
            self._decompressor, source.ctypes.data, len(source), out.ctypes.data + at, size, None
        )
        return status == 0  # LIBDEFLATE_SUCCESS; with no size pointer, also that it filled exactly `size`

    def __del__(self) -> None:
        if self._decompressor:
            self._library.libdeflate_free_decompressor(self._decompressor)


def _libdeflate() -> ctypes.CDLL | None:
    """libdeflate's C functions from the `deflate` package's module, which links it whole; None when its build
    does not export them."""
    try:
        library = ctypes.CDLL(deflate._deflate.__file__)
        decompress = library.libdeflate_deflate_decompress
        allocate, free = library.libdeflate_alloc_decompressor, library.libdeflate_free_decompressor
    except (OSError, AttributeError):
        return None
    pointer, size = ctypes.c_void_p, ctypes.c_size_t
    decompress.argtypes = [pointer, pointer, size, pointer, size, pointer]
    decompress.restype = ctypes.c_int
    allocate.argtypes, allocate.restype = [], pointer
    free.argtypes, free.restype = [pointer], None
    return library


def _block_size(extra: memoryview) -> int | None:
    """The block's total size from its BC subfield (BSIZE + 1), if it has one."""
    at = 0
    while at + 4 <= len(extra):
        length = struct.unpack_from("<H", extra, at + 2)[0]
        if extra[at : at + 2] == b"BC" and length == 2 and at + 6 <= len(extra):
            return struct.unpack_from("<H", extra, at + 4)[0] + 1
        at += 4 + length
    return None
