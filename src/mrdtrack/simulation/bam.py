"""A simulated sample written as a coordinate-sorted, indexed BAM or CRAM through pysam, one record at a
time: the plain writer, which `bam_bulk.write_bam_fast` matches record for record, faster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pysam

from mrdtrack import __version__
from mrdtrack.simulation.records import MATE_UNMAPPED, SIMULATOR, SimulatedSample, cigar_strings
from mrdtrack.simulation.reference import BASE_BYTES, Reference


def bam_header(sample: SimulatedSample, reference: Reference) -> dict:
    """SAM header: @HD sorted by coordinate, @SQ with MD5s (needed for CRAM), one @RG, the simulator's @PG."""
    marked = "duplicates marked (0x400)" if sample.settings.duplicate_marked else "duplicates not marked"
    return {
        "HD": {"VN": "1.6", "SO": "coordinate"},
        "SQ": [
            {"SN": n, "LN": length, "M5": reference.md5(n)}
            for n, length in zip(reference.names, reference.lengths, strict=True)
        ],
        "RG": [
            {
                "ID": sample.sample_id,
                "SM": sample.sample_id,
                "LB": sample.settings.library,
                "PL": "ILLUMINA",
                "PU": sample.settings.platform_unit,
            }
        ],
        "PG": [
            {
                "ID": SIMULATOR,
                "PN": SIMULATOR,
                "VN": __version__,
                "DS": f"simulated cfDNA UMI capture, 2x{sample.settings.read_length}, {marked}",
            }
        ],
    }


def sam_lines(sample: SimulatedSample) -> list[str]:
    """The sample's records as SAM text lines, in coordinate order."""
    rec = sample.records
    cigars = cigar_strings(rec)
    names = list(sample.reference_names)
    seq_bytes = BASE_BYTES[rec.seq]
    qual_bytes = (rec.qual + 33).astype(np.uint8)
    flag, tid, mtid, mate = rec.flag.tolist(), rec.tid.tolist(), rec.mtid.tolist(), rec.mate_rec.tolist()
    pos, mpos, mapq, tlen, length = (a.tolist() for a in (rec.pos, rec.mpos, rec.mapq, rec.tlen, rec.length))
    rg = f"RG:Z:{sample.sample_id}"
    lines = []
    for i in range(len(rec)):
        n = length[i]
        rname = names[tid[i]] if tid[i] >= 0 else "*"
        rnext = "*" if mtid[i] < 0 else ("=" if mtid[i] == tid[i] else names[mtid[i]])
        tags = []
        j = mate[i]
        if j >= 0 and not flag[i] & MATE_UNMAPPED:
            tags += [f"MC:Z:{cigars[j]}", f"MQ:i:{mapq[j]}"]
        tags += [rg, f"RX:Z:{rec.umi[i]}"] + ([f"SA:Z:{rec.sa[i]}"] if rec.sa[i] else [])
        fields_ = [
            sample.qname(int(rec.qid[i])), str(flag[i]), rname, str(pos[i] + 1), str(mapq[i]), cigars[i],
            rnext, str(mpos[i] + 1), str(tlen[i]), seq_bytes[i, :n].tobytes().decode(),
            qual_bytes[i, :n].tobytes().decode(), *tags,
        ]  # fmt: skip
        lines.append("\t".join(fields_))
    return lines


def write_bam(
    sample: SimulatedSample, path: str | Path, reference: Reference, fmt: str = "bam", level: int = 9
) -> Path:
    """Write the sample as a coordinate-sorted BAM (or CRAM against `reference.fasta_path`) plus its index.

    Parameters
    ----------
    sample
        The simulated sample.
    path
        The file to write; its folder is created.
    reference
        The genome (header MD5s; on disk for CRAM, see `write_reference`).
    fmt
        "bam" or "cram".
    level
        The BAM deflate level: 9 keeps bundled files small, 6 (htslib's default) writes ~2x faster.

    Returns
    -------
    Path
        `path` (its index beside it: .bai or .crai).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = pysam.AlignmentHeader.from_dict(bam_header(sample, reference))
    if fmt == "cram":
        if reference.fasta_path is None:
            raise ValueError("CRAM needs the reference on disk: call write_reference first")
        out = pysam.AlignmentFile(
            str(path), "wc", header=header, reference_filename=str(reference.fasta_path)
        )
        index = path.with_name(path.name + ".crai")
    elif fmt == "bam":
        out = pysam.AlignmentFile(str(path), "wb", header=header, format_options=[f"level={level}".encode()])
        index = path.with_name(path.name + ".bai")
    else:
        raise ValueError(f"unknown format {fmt!r} (bam or cram)")
    with out:
        for line in sam_lines(sample):
            out.write(pysam.AlignedSegment.fromstring(line, header))
    index.unlink(missing_ok=True)
    pysam.index(str(path), str(index))
    return path
