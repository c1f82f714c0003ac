"""The counting oracle: what a counter that follows the project's counting rules must report for a
simulated sample, re-derived from the simulator's own records (not from a BAM), so the simulated files double
as a test of the counting step."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mrdtrack.simulation.records import (
    DUPLICATE,
    QCFAIL,
    SECONDARY,
    SUPPLEMENTARY,
    UNMAPPED,
    Records,
    SimulatedSample,
    flat_ranges,
)

# The oracle's base code (after A, C, G, T, N = 0-4) for a read pair whose mates disagree or a family without
# a consensus: such a molecule counts as discordant.
_DISCORDANT_CALL = 5
#: The molecule counts `expected_counts` predicts, named as in the counts table (results/counts/{sample}.tsv):
#: molecules whose consensus base is REF, ALT, another base, or none (mates or family members disagree).
MOLECULE_COUNT_COLUMNS = ["ref_molecules", "alt_molecules", "other_molecules", "discordant_molecules"]


def oracle_dedup_mode(records: Records, mode: str) -> str:
    """The deduplication mode the oracle counts a sample's records with.

    Parameters
    ----------
    records
        The sample's records.
    mode
        "umi", "flag" or "coordinates" (kept), or "auto": umi when reads carry RX, else flag when any read is
        duplicate-flagged, else coordinates.

    Returns
    -------
    str
        "umi", "flag" or "coordinates".
    """
    if mode != "auto":
        if mode not in ("umi", "flag", "coordinates"):
            raise ValueError(f"unknown dedup mode {mode!r}")
        return mode
    if any(records.umi.astype(bool)):
        return "umi"
    return "flag" if np.any(records.flag & DUPLICATE) else "coordinates"


def expected_counts(
    sample: SimulatedSample, mode: str = "umi", min_mapq: int = 20, min_base_quality: int = 20
) -> pd.DataFrame:
    """Per unique locus: the truth and the molecule counts a counter following the project's rules must report.

    Rules: drop unmapped/secondary/supplementary/QC-fail/MAPQ<min_mapq reads (and 0x400 in mode `flag`); a read
    observes a locus with an aligned, non-clipped base of quality >= min_base_quality; mates agreeing give that
    base, disagreeing give 'discordant'; pairs group into families by (chrom, fragment start, |TLEN|[, UMI
    cluster]), either strand (F1R2 and F2R1 pairs of one fragment are one molecule); a family's base is the
    unique most frequent base with >= 60% of its base observations, else discordant. In mode `flag` every
    remaining pair is its own molecule (the duplicate marker already grouped them).

    Parameters
    ----------
    sample
        The simulated (or hand-made) sample.
    mode
        The deduplication mode, as `oracle_dedup_mode` takes it.
    min_mapq
        Reads below this mapping quality are dropped.
    min_base_quality
        Bases below this quality observe nothing.

    Returns
    -------
    pandas.DataFrame
        sample_id, chrom, pos, ref, alt, the truth (true_molecules, true_tumor_alt_molecules) and
        `MOLECULE_COUNT_COLUMNS`.
    """
    mode = oracle_dedup_mode(sample.records, mode)
    obs = _read_observations(sample, mode, min_mapq, min_base_quality)
    pairs = _pair_observations(sample.records, obs)
    pairs["family"] = _family_ids(pairs, mode)
    calls = _family_calls(pairs)
    out = sample.truth()
    ref_code = sample.loci["ref_code"].to_numpy()[calls["locus"]]
    alt_code = sample.loci["alt_code"].to_numpy()[calls["locus"]]
    call = calls["call"].to_numpy()
    kind = np.select([call == ref_code, call == alt_code, call == _DISCORDANT_CALL], [0, 1, 3], 2)
    table = np.zeros((len(out), 4), np.int64)
    np.add.at(table, (calls["locus"].to_numpy(), kind), 1)
    out[MOLECULE_COUNT_COLUMNS] = table
    out.insert(0, "sample_id", sample.sample_id)
    return out


def _read_observations(sample: SimulatedSample, mode: str, min_mapq: int, min_bq: int) -> pd.DataFrame:
    """One row per (read, locus) where the read has a usable base: record index, locus index, base code."""
    rec = sample.records
    drop = UNMAPPED | SECONDARY | SUPPLEMENTARY | QCFAIL | (DUPLICATE if mode == "flag" else 0)
    idx = np.flatnonzero(((rec.flag & drop) == 0) & (rec.mapq >= min_mapq) & (rec.tid >= 0))
    gstart = sample.reference_offsets[rec.tid[idx]] + rec.pos[idx]
    locus_g = sample.loci["gpos"].to_numpy()
    lo = np.searchsorted(locus_g, gstart)
    hi = np.searchsorted(locus_g, gstart + rec.aligned_span()[idx])
    r, li = flat_ranges(idx, lo, hi - lo)
    x = locus_g[li] - sample.reference_offsets[rec.tid[r]] - rec.pos[r]
    m1, d = rec.m1[r], rec.dlen[r]
    deleted = (x >= m1) & (x < m1 + d)
    col = rec.cl[r] + np.where(x < m1, x, x - d)
    good = ~deleted & (rec.qual[r, col] >= min_bq)
    return pd.DataFrame(
        {"rec": r[good], "locus": li[good], "base": rec.seq[r[good], col[good]].astype(np.int64)}
    )


def _pair_observations(rec: Records, obs: pd.DataFrame) -> pd.DataFrame:
    """Collapse mates: agreeing bases -> base, disagreeing -> _DISCORDANT_CALL; keep the family key fields."""
    obs = obs.assign(qid=rec.qid[obs["rec"].to_numpy()])
    grouped = obs.groupby(["locus", "qid"], sort=True)
    pairs = grouped.agg(rec=("rec", "first"), lo=("base", "min"), hi=("base", "max")).reset_index()
    pairs["value"] = np.where(pairs["lo"] == pairs["hi"], pairs["lo"], _DISCORDANT_CALL)
    r = pairs["rec"].to_numpy()
    pairs["tid"] = rec.tid[r]
    pairs["start"] = np.minimum(rec.pos[r], rec.mpos[r])
    pairs["tlen"] = np.abs(rec.tlen[r])
    pairs["umi"] = rec.umi[r]
    return pairs.drop(columns=["lo", "hi"])


def _family_ids(pairs: pd.DataFrame, mode: str) -> np.ndarray:
    if mode == "flag":
        return np.arange(len(pairs))
    keys = ["locus", "tid", "start", "tlen"]
    group = pairs.groupby(keys, sort=True).ngroup().to_numpy()
    if mode != "umi":
        return group
    cluster = _umi_clusters(group, pairs["umi"].to_numpy())
    return pd.DataFrame({"g": group, "c": cluster}).groupby(["g", "c"], sort=True).ngroup().to_numpy()


def _umi_clusters(group: np.ndarray, umi: np.ndarray) -> np.ndarray:
    """Cluster id per pair within its coordinate group: UMIs by (pairs desc, UMI asc); each joins the first
    earlier cluster whose seed is within Hamming distance 1 (equal length), else it seeds a new one."""
    frame = pd.DataFrame({"g": group, "u": umi})
    sizes = frame.groupby(["g", "u"]).size().rename("n").reset_index()
    sizes = sizes[sizes["g"].duplicated(keep=False)].sort_values(
        ["g", "n", "u"], ascending=[True, False, True]
    )
    cluster: dict[tuple[int, str], int] = {}
    seeds: list[str] = []
    previous = -1
    for g, u in zip(sizes["g"].tolist(), sizes["u"].tolist(), strict=True):
        if g != previous:
            seeds, previous = [], g
        cluster[(g, u)] = _join_cluster(seeds, u)
    return np.array([cluster.get(key, 0) for key in zip(group.tolist(), umi.tolist(), strict=True)])


def _join_cluster(seeds: list[str], umi: str) -> int:
    for k, seed in enumerate(seeds):
        if len(seed) == len(umi) and sum(a != b for a, b in zip(seed, umi, strict=True)) <= 1:
            return k
    seeds.append(umi)
    return len(seeds) - 1


def _family_calls(pairs: pd.DataFrame) -> pd.DataFrame:
    """Consensus per family: unique top base with share >= 0.6 of base observations, else _DISCORDANT_CALL."""
    fam = pairs["family"].to_numpy()
    n_fam = int(fam.max()) + 1 if fam.size else 0
    counts = np.zeros((n_fam, 6), np.int64)
    np.add.at(counts, (fam, pairs["value"].to_numpy()), 1)
    bases = counts[:, :5]
    n_bases = bases.sum(axis=1)
    top = bases.max(axis=1)
    unique_top = (bases == top[:, None]).sum(axis=1) == 1
    # Integer form of top / n_bases >= 0.6, so no float rounding decides a borderline family.
    ok = (n_bases > 0) & unique_top & (5 * top >= 3 * n_bases)
    call = np.where(ok, bases.argmax(axis=1), _DISCORDANT_CALL)
    locus = pairs.groupby("family", sort=True)["locus"].first().to_numpy()
    return pd.DataFrame({"locus": locus, "call": call})
