"""A BAM file's decompressed stream, its BGZF blocks inflated by libdeflate (the `deflate` package).

The compiled engine parses the records itself (bamscan.py); htslib's reader, as pysam builds it, inflates with
zlib: 1.2 s of CPU per GB of a genome-wide plasma BAM's records, where libdeflate takes 0.34 s. Each block is
checked as htslib checks it: its header, its size, its CRC32; a block that fails raises OSError, which counting
reports as a truncated or corrupt file.
"""

from __future__ import annotations

import struct

import deflate

MAGIC = b"\x1f\x8b\x08\x04"  # gzip, deflate, FEXTRA: every BGZF block starts so
HEADER = 12  # bytes before the extra field
FOOTER = 8  # CRC32 and the inflated size
CHUNK = 1 << 20  # compressed bytes read from the file at a time


class BgzfReader:
    """Read a BGZF file's decompressed bytes from a virtual offset (as pysam.BGZFile's `seek` and `read`)."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 (closed by `close`, as the reader is held open)
        self._raw = b""  # compressed bytes read and not yet inflated, from self._at
        self._at = 0
        self._blocks: list[bytes | bytearray] = []  # inflated bytes not yet returned, in order
        self._first = 0  # bytes of the first of them already returned

    def close(self) -> None:
        self._file.close()

    def seek(self, virtual_offset: int) -> None:
        """Go to a virtual offset: the file offset of a block << 16 | the offset within its inflated bytes."""
        self._file.seek(virtual_offset >> 16)
        self._raw, self._at, self._blocks, self._first = b"", 0, [], 0
        within = virtual_offset & 0xFFFF
        if within:
            block = self._next_block()
            if block is None or len(block) < within:
                raise OSError("a virtual offset past the end of its BGZF block")
            self._blocks, self._first = [block], within

    def read(self, size: int) -> bytes:
        """Up to `size` inflated bytes (fewer only at the end of the file; b"" there)."""
        have = sum(len(block) for block in self._blocks) - self._first
        while have < size:
            block = self._next_block()
            if block is None:
                break
            if block:
                self._blocks.append(block)
                have += len(block)
        parts, wanted = [], size
        while self._blocks and wanted:
            block = self._blocks[0]
            part = memoryview(block)[self._first : self._first + wanted]
            parts.append(part)
            wanted -= len(part)
            self._first += len(part)
            if self._first == len(block):
                self._blocks.pop(0)
                self._first = 0
        return b"".join(parts)

    def _next_block(self) -> bytearray | None:
        """The next block's inflated bytes (None at the end of the file)."""
        if self._at_end():
            return None
        header = self._compressed(HEADER)
        if header[:4] != MAGIC:
            raise OSError("not a BGZF block: its header is not gzip with an extra field")
        extra_length = struct.unpack_from("<H", header, 10)[0]
        block_size = _block_size(self._compressed(extra_length, HEADER))
        if block_size is None or block_size < HEADER + extra_length + FOOTER:
            raise OSError("a BGZF block without a valid BC field (its size)")
        block = self._compressed(block_size)
        crc, inflated_size = struct.unpack_from("<II", block, block_size - FOOTER)
        try:
            data = deflate.deflate_decompress(
                block[HEADER + extra_length : block_size - FOOTER], inflated_size
            )
        except deflate.DeflateError:
            raise OSError("a BGZF block that does not inflate") from None
        if len(data) != inflated_size or deflate.crc32(data) != crc:
            raise OSError("a BGZF block whose CRC32 or size does not match its data")
        self._at += block_size
        return data

    def _at_end(self) -> bool:
        """Whether the file ends where the current block would start."""
        if self._at < len(self._raw):
            return False
        self._raw, self._at = self._file.read(CHUNK), 0
        return not self._raw

    def _compressed(self, size: int, skip: int = 0) -> memoryview:
        """`size` compressed bytes from `skip` past the current block's start, without consuming them; an
        OSError when the file ends before them."""
        end = self._at + skip + size
        while len(self._raw) < end:
            more = self._file.read(max(CHUNK, end - len(self._raw)))
            if not more:
                raise OSError("a truncated BGZF block")
            self._raw = self._raw[self._at :] + more
            end -= self._at
            self._at = 0
        return memoryview(self._raw)[self._at + skip : end]


def _block_size(extra: memoryview) -> int | None:
    """The block's total size from its BC subfield (BSIZE + 1), if it has one."""
    at = 0
    while at + 4 <= len(extra):
        length = struct.unpack_from("<H", extra, at + 2)[0]
        if extra[at : at + 2] == b"BC" and length == 2 and at + 6 <= len(extra):
            return struct.unpack_from("<H", extra, at + 4)[0] + 1
        at += 4 + length
    return None
