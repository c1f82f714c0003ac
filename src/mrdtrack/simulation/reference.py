"""The simulated genome: random contigs with a human-like GC content and CpG deficit, as base codes
(A=0, C=1, G=2, T=3, N=4), written to and read from an indexed FASTA, and the arrays every sample derives from
it (context sites, padded codes, GC counts), computed once per reference."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pysam

BASES = "ACGT"
BASE_BYTES = np.frombuffer(b"ACGTN", dtype=np.uint8)  # base code -> ASCII letter
ENCODE = np.full(256, 4, dtype=np.uint8)  # ASCII letter -> base code (anything but ACGT/acgt is N)
for _i, _b in enumerate(b"ACGT"):
    ENCODE[_b] = _i
    ENCODE[_b + 32] = _i  # lower case (soft-masked) input
COMPLEMENT = np.array([3, 2, 1, 0, 4], dtype=np.uint8)  # base code -> its complement's code
DEFAULT_CONTIGS: dict[str, int] = {"chr1": 120_000, "chr2": 95_000, "chr3": 70_000}


@dataclass
class Reference:
    """Contigs as one concatenated array of base codes (A=0, C=1, G=2, T=3) with per-contig offsets.

    Parameters
    ----------
    names : tuple of str
        Contig names, in order.
    lengths : tuple of int
        Contig lengths (bases), in the same order.
    codes : numpy.ndarray
        Every contig's base codes (uint8; N=4 where a FASTA has anything but ACGT), concatenated in order.
    fasta_path : Path or None
        The FASTA the contigs were written to or read from (CRAM encoding needs it); None while only in memory.
    cache : dict of str to numpy.ndarray
        Arrays derived from the bases (context sites, padded codes), computed once per reference; not part of
        its value (left out of comparisons).
    """

    names: tuple[str, ...]
    lengths: tuple[int, ...]
    codes: np.ndarray
    fasta_path: Path | None = None
    cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    def tid(self, chrom: str) -> int:
        return self.names.index(chrom)

    def fetch(self, chrom: str, start: int, end: int) -> str:
        """Sequence of `chrom` over the 0-based half-open interval [start, end)."""
        offset = int(self.offsets[self.tid(chrom)])
        return BASE_BYTES[self.codes[offset + start : offset + end]].tobytes().decode()

    def md5(self, chrom: str) -> str:
        return hashlib.md5(self.fetch(chrom, 0, self.lengths[self.tid(chrom)]).encode()).hexdigest()


def make_reference(
    rng: np.random.Generator,
    contigs: Mapping[str, int] | None = None,
    gc: float = 0.41,
    cpg_ratio: float = 0.25,
) -> Reference:
    """Random contigs with GC content `gc` and CpG depleted to `cpg_ratio` of its expected frequency.

    Parameters
    ----------
    rng
        The random stream the bases are drawn from.
    contigs
        Contig name -> length (default `DEFAULT_CONTIGS`).
    gc
        GC content of the genome.
    cpg_ratio
        CpG frequency as a share of what the GC content alone would give (the human CpG deficit).

    Returns
    -------
    Reference
        The contigs in memory, not yet on disk (`write_reference`).
    """
    contigs = dict(contigs or DEFAULT_CONTIGS)
    depletion = 1.0 - cpg_ratio
    # Depletion turns C/G into T/A, so start a little GC-richer to land on the requested GC content.
    gc0 = gc + depletion * (gc / 2) ** 2
    probs = [(1 - gc0) / 2, gc0 / 2, gc0 / 2, (1 - gc0) / 2]
    parts = []
    for length in contigs.values():
        seq = rng.choice(4, size=length, p=probs).astype(np.uint8)
        # Methylated CpGs deaminate over evolution (C>T, or G>A on the other strand): the human CpG deficit.
        cpg = np.flatnonzero((seq[:-1] == 1) & (seq[1:] == 2))
        hit = cpg[rng.random(cpg.size) < depletion]
        on_g = rng.random(hit.size) < 0.5
        seq[hit[~on_g]] = 3
        seq[hit[on_g] + 1] = 0
        parts.append(seq)
    return Reference(tuple(contigs), tuple(contigs.values()), np.concatenate(parts))


def write_reference(reference: Reference, path: str | Path, line_width: int = 60) -> Path:
    """Write a bgzipped FASTA with .fai and .gzi indexes; remember the path for CRAM encoding.

    Parameters
    ----------
    reference
        The genome; its `fasta_path` is set to `path`.
    path
        The FASTA to write (.fa.gz); its folder is created.
    line_width
        Bases per FASTA line.

    Returns
    -------
    Path
        `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = path.with_name(path.name + ".tmp.fa")
    with plain.open("w") as handle:
        for chrom, length in zip(reference.names, reference.lengths, strict=True):
            seq = reference.fetch(chrom, 0, length)
            handle.write(f">{chrom}\n")
            handle.writelines(seq[i : i + line_width] + "\n" for i in range(0, length, line_width))
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    for stale in (path.with_name(path.name + ".fai"), path.with_name(path.name + ".gzi")):
        stale.unlink(missing_ok=True)
    pysam.faidx(str(path))
    reference.fasta_path = path
    return path


def read_reference(path: str | Path) -> Reference:
    """Load a FASTA (plain or bgzipped, indexed) written by `write_reference` or any other tool.

    Parameters
    ----------
    path
        The FASTA, with its .fai (and .gzi when bgzipped).

    Returns
    -------
    Reference
        Its contigs as base codes, with `fasta_path` set.
    """
    with pysam.FastaFile(str(path)) as fasta:
        names = tuple(fasta.references)
        lengths = tuple(fasta.lengths)
        codes = np.concatenate([ENCODE[np.frombuffer(fasta.fetch(n).encode(), np.uint8)] for n in names])
    return Reference(names, lengths, codes, Path(path))


# Arrays derived from the reference, cached on it (worker processes inherit them after `warm_up`).
def cpg_sites(reference: Reference) -> tuple[np.ndarray, np.ndarray]:
    """Global positions of CpG cytosines and of their guanines (contig joins cannot be CpGs in practice)."""
    if "cpg" not in reference.cache:
        c = reference.codes
        reference.cache["cpg"] = np.flatnonzero((c[:-1] == 1) & (c[1:] == 2))
    cpg = reference.cache["cpg"]
    return cpg, cpg + 1


def base_sites(reference: Reference, code: int) -> np.ndarray:
    """Global positions of every base with `code`."""
    if BASES[code] not in reference.cache:
        reference.cache[BASES[code]] = np.flatnonzero(reference.codes == code)
    return reference.cache[BASES[code]]


def padded_codes(reference: Reference, width: int) -> np.ndarray:
    """The genome's codes with `width` Ns on either side, so a read window near an end is one slice."""
    key = f"padded{width}"
    if key not in reference.cache:
        pad = np.full(width, 4, np.uint8)
        reference.cache[key] = np.concatenate([pad, reference.codes.astype(np.uint8), pad])
    return reference.cache[key]


def gc_fractions(reference: Reference, gpositions: np.ndarray) -> np.ndarray:
    """GC share of the 160 bp around each global position (clipped at the genome's ends), from a cached
    running count: exactly the mean of the window's G/C indicators (counts and lengths are exact integers)."""
    if "gc_count" not in reference.cache:
        reference.cache["gc_count"] = np.concatenate([[0], np.cumsum(np.isin(reference.codes, (1, 2)))])
    count = reference.cache["gc_count"]
    start = np.maximum(gpositions - 80, 0)
    end = np.minimum(gpositions + 80, reference.codes.size)
    return (count[end] - count[start]) / (end - start)
