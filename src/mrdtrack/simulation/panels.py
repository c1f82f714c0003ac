"""Tumor variant panels on the simulated genome: SNVs drawn with a tumor's substitution spectrum, their
clonality weights, the per-locus capture efficiency of the assay, sites-only VCFs, and the truth table of
special loci (CHIP, extra noise)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pysam

from mrdtrack.inputs.panel import WEIGHT_BOUNDS
from mrdtrack.simulation.records import SIMULATOR, LocusKey
from mrdtrack.simulation.reference import BASES, Reference, gc_fractions
from mrdtrack.vocabulary import LOCUS_KEY

#: Pyrimidine-centred SNV spectrum of the simulated tumors: substitution class -> probability that a panel SNV
#: is of that class (they add up to 1; C>T dominant, as in breast cancer).
DEFAULT_SPECTRUM: dict[str, float] = {
    "C>A": 0.10,
    "C>G": 0.15,
    "C>T": 0.45,
    "T>A": 0.08,
    "T>C": 0.15,
    "T>G": 0.07,
}


def make_panel(
    reference: Reference,
    n_loci: int,
    rng: np.random.Generator,
    *,
    avoid: Sequence[tuple[str, int]] = (),
    min_spacing: int = 600,
    margin: int = 500,
    spectrum: Mapping[str, float] | None = None,
    with_ccf: bool = False,
) -> pd.DataFrame:
    """Draw `n_loci` SNVs (1-based `pos`) at least `min_spacing` from each other and from `avoid`.

    C>T at CpG is favoured as in real tumors (clock-like signature).

    Parameters
    ----------
    reference
        The genome the SNVs are placed on.
    n_loci
        Number of SNVs.
    rng
        The random stream.
    avoid
        (chrom, 1-based pos) of loci already taken, e.g. other patients' panels.
    min_spacing
        Smallest distance between two loci (bp): more than a fragment, so one fragment spans one locus.
    margin
        Distance kept from the contig ends (bp).
    spectrum
        Substitution class ("C>T") -> share (default `DEFAULT_SPECTRUM`).
    with_ccf
        Add a `ccf` column (70% clonal, 0.9-1.0; else subclonal, 0.25-0.8).

    Returns
    -------
    pandas.DataFrame
        Columns chrom, pos, ref, alt [, ccf], in reference order.
    """
    spectrum = dict(spectrum or DEFAULT_SPECTRUM)
    offsets = reference.offsets
    taken = [int(offsets[reference.tid(c)]) + p - 1 for c, p in avoid]
    rows: list[tuple[str, int, str, str]] = []
    classes, weights = list(spectrum), np.array(list(spectrum.values()))
    attempts = 0
    while len(rows) < n_loci:
        attempts += 1
        if attempts > 200 * n_loci + 1000:
            raise ValueError(f"cannot place {n_loci} loci {min_spacing} bp apart: make the reference larger")
        sub = classes[rng.choice(len(classes), p=weights / weights.sum())]
        site = _draw_site(reference, sub, rng, margin)
        if site is None:
            continue
        gpos, ref, alt = site
        if taken and np.min(np.abs(np.asarray(taken) - gpos)) < min_spacing:
            continue
        taken.append(gpos)
        tid = int(np.searchsorted(offsets, gpos, side="right") - 1)
        rows.append((reference.names[tid], gpos - int(offsets[tid]) + 1, ref, alt))
    panel = pd.DataFrame(rows, columns=LOCUS_KEY)
    panel = sort_loci(panel, reference)
    if with_ccf:
        clonal = rng.random(len(panel)) < 0.7
        ccf = np.where(clonal, rng.uniform(0.9, 1.0, len(panel)), rng.uniform(0.25, 0.8, len(panel)))
        panel["ccf"] = np.round(ccf, 2)
    return panel


def _draw_site(
    reference: Reference, sub: str, rng: np.random.Generator, margin: int
) -> tuple[int, str, str] | None:
    """A random position whose reference base fits substitution class `sub` (either strand)."""
    lengths = np.asarray(reference.lengths)
    tid = int(rng.choice(len(lengths), p=lengths / lengths.sum()))
    start = int(reference.offsets[tid]) + margin
    end = int(reference.offsets[tid]) + int(lengths[tid]) - margin
    gpos = int(rng.integers(start, end))
    pyr_ref, pyr_alt = sub.split(">")
    purine = rng.random() < 0.5
    want = BASES.index(pyr_ref) if not purine else 3 - BASES.index(pyr_ref)
    # Most C>T in tumors sit at CpG: ask for a CpG half of the time.
    need_cpg = sub == "C>T" and rng.random() < 0.5
    window = reference.codes[gpos : min(gpos + 200, end)]
    ok = window == want
    if need_cpg:
        nxt = reference.codes[gpos + 1 : gpos + 1 + window.size]
        prv = reference.codes[gpos - 1 : gpos - 1 + window.size]
        ok &= (nxt == 2) if not purine else (prv == 1)
    hits = np.flatnonzero(ok)
    if hits.size == 0:
        return None
    gpos += int(hits[0])
    ref = BASES[want]
    alt = pyr_alt if not purine else BASES[3 - BASES.index(pyr_alt)]
    return gpos, ref, alt


def sort_loci(frame: pd.DataFrame, reference: Reference) -> pd.DataFrame:
    order = frame["chrom"].map({c: i for i, c in enumerate(reference.names)})
    return frame.assign(_o=order).sort_values(["_o", "pos"]).drop(columns="_o").reset_index(drop=True)


def panel_weights(panel: pd.DataFrame) -> np.ndarray:
    """Clonality weight w per panel row: the CCF when given, else 1.

    Parameters
    ----------
    panel
        Panel rows, with an optional `weight` (taken as it is) or `ccf` column.

    Returns
    -------
    numpy.ndarray
        One weight per row.
    """
    if "weight" in panel:
        return panel["weight"].to_numpy(float)
    if "ccf" in panel:
        return panel["ccf"].fillna(1.0).to_numpy(float)
    return np.ones(len(panel))


def spread_weights(
    rng: np.random.Generator, weights: np.ndarray, spread: float, cap: float = WEIGHT_BOUNDS[1]
) -> np.ndarray:
    """The tumor's real per-locus weights when they scatter around the panel's (subclonal variants, copy
    numbers the panel does not record).

    Each panel weight is multiplied by a log-normal factor, capped at `cap`, and of mean exactly 1 after that
    cap. A factor of mean 1 before the cap would make the real weights smaller than the panel's on average (by
    3% at spread 0.5), a bias no caller could see or be blamed for.

    Parameters
    ----------
    rng
        The random stream; one normal draw per weight is taken at any `spread`, so the rest of a simulation
        draws the same.
    weights
        The panel's weights.
    spread
        Standard deviation of the factor on the log scale; 0 or less keeps the panel's weights.
    cap
        The largest real weight.

    Returns
    -------
    numpy.ndarray
        The real weights, one per panel weight.
    """
    weights = np.asarray(weights, dtype=float)
    z = rng.standard_normal(len(weights))  # drawn at any spread: the rest of a simulation draws the same
    if spread <= 0:
        return weights.copy()
    out = np.minimum(weights, cap)
    for weight in np.unique(weights[weights < cap]):
        rows = weights == weight
        factor_cap = cap / weight
        out[rows] = weight * np.minimum(
            np.exp(_mean_one_log_mean(spread, factor_cap) + spread * z[rows]), factor_cap
        )
    return out


def _mean_one_log_mean(spread: float, cap: float) -> float:
    """The log-scale mean mu with E[min(exp(mu + spread Z), cap)] = 1 (cap > 1)."""
    from scipy import optimize, stats

    def capped_mean(mu: float) -> float:
        below = np.exp(mu + spread**2 / 2) * stats.norm.cdf((np.log(cap) - mu - spread**2) / spread)
        return float(below + cap * stats.norm.sf((np.log(cap) - mu) / spread)) - 1

    return float(optimize.brentq(capped_mean, -(spread**2) / 2 - 5, np.log(cap)))


def write_panel_vcf(
    panel: pd.DataFrame, path: str | Path, reference: Reference, compress: bool = False
) -> Path:
    """Write a panel as a sites-only VCF 4.2 (with a CCF INFO field when the panel has `ccf`).

    Parameters
    ----------
    panel
        Columns chrom, pos, ref, alt [, ccf].
    path
        The VCF to write (ending in .gz with `compress`); its folder is created.
    reference
        The genome, for the contig lines and the record order.
    compress
        Write a bgzipped file with a tabix index.

    Returns
    -------
    Path
        `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    has_ccf = "ccf" in panel
    lines = ["##fileformat=VCFv4.2", f"##source={SIMULATOR}", "##reference=genome.fa.gz"]
    lines += [
        f"##contig=<ID={c},length={n}>" for c, n in zip(reference.names, reference.lengths, strict=True)
    ]
    lines.append('##INFO=<ID=SOMATIC,Number=0,Type=Flag,Description="Somatic mutation in the primary tumor">')
    if has_ccf:
        lines.append(
            '##INFO=<ID=CCF,Number=1,Type=Float,Description="Cancer cell fraction of the variant (0-1)">'
        )
    lines.append('##FILTER=<ID=PASS,Description="All filters passed">')
    lines.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
    for row in sort_loci(panel, reference).itertuples(index=False):
        info = "SOMATIC" + (f";CCF={row.ccf:.2f}" if has_ccf else "")
        lines.append(f"{row.chrom}\t{row.pos}\t.\t{row.ref}\t{row.alt}\t.\tPASS\t{info}")
    text = "\n".join(lines) + "\n"
    if not compress:
        path.write_text(text)
        return path
    plain = path.with_name(path.name + ".tmp.vcf")
    plain.write_text(text)
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    pysam.tabix_index(str(path), preset="vcf", force=True)
    return path


def make_panels(
    reference: Reference,
    n_loci: Mapping[str, int],
    rng: np.random.Generator,
    with_ccf: Mapping[str, bool] | bool = False,
) -> dict[str, pd.DataFrame]:
    """One panel per patient (in the order of `n_loci`), each kept `make_panel`'s spacing from the others'.

    Parameters
    ----------
    reference
        The genome the SNVs are placed on.
    n_loci
        Patient -> number of SNVs.
    rng
        The random stream, used patient by patient.
    with_ccf
        Whether panels get a `ccf` column: one answer for all, or patient -> answer.

    Returns
    -------
    dict of str to pandas.DataFrame
        Patient -> panel, as `make_panel` gives it.
    """
    panels: dict[str, pd.DataFrame] = {}
    taken: list[tuple[str, int]] = []
    for patient, size in n_loci.items():
        ccf = with_ccf if isinstance(with_ccf, bool) else with_ccf[patient]
        panel = make_panel(reference, size, rng, avoid=taken, with_ccf=ccf)
        taken += list(zip(panel["chrom"], panel["pos"], strict=True))
        panels[patient] = panel
    return panels


def locus_key(row: pd.Series) -> LocusKey:
    """The key of one panel row.

    Parameters
    ----------
    row
        A row with chrom, pos, ref and alt.

    Returns
    -------
    LocusKey
        (chrom, pos, ref, alt).
    """
    return (str(row["chrom"]), int(row["pos"]), str(row["ref"]), str(row["alt"]))


def best_captured_locus(
    reference: Reference, panel: pd.DataFrame, substitutions: Sequence[str] = ()
) -> LocusKey:
    """The panel locus with the highest capture efficiency, among `substitutions` when the panel has any: a
    designed feature (CHIP, a noisy locus) placed there shows even at shallow depth.

    Parameters
    ----------
    reference
        The genome.
    panel
        Panel rows (chrom, pos, ref, alt).
    substitutions
        REF+ALT pairs to prefer, e.g. ("CT", "GA"); empty: any locus.

    Returns
    -------
    LocusKey
        The chosen locus.
    """
    candidates = panel[(panel["ref"] + panel["alt"]).isin(list(substitutions))] if substitutions else panel
    candidates = candidates if len(candidates) else panel
    return locus_key(candidates.iloc[int(np.argmax(capture_efficiency(reference, candidates)))])


def locus_truth_table(
    panels: Mapping[str, pd.DataFrame], chip: Mapping[LocusKey, float], noise: Mapping[LocusKey, float]
) -> pd.DataFrame:
    """Every panel row with its weight, and whether it carries CHIP (at `chip`'s VAF) or extra noise.

    Parameters
    ----------
    panels
        Patient -> panel.
    chip
        CHIP locus -> VAF in the carrier's non-tumor molecules.
    noise
        Noisy locus -> extra ALT rate.

    Returns
    -------
    pandas.DataFrame
        Columns patient_id, chrom, pos, ref, alt, weight, special ("chip", "noisy" or ""), chip_vaf and
        noise_rate.
    """
    frames = [panel.assign(patient_id=pid, weight=panel_weights(panel)) for pid, panel in panels.items()]
    table = pd.concat(frames, ignore_index=True)
    keys = [locus_key(row) for _, row in table.iterrows()]
    table["special"] = ["chip" if k in chip else "noisy" if k in noise else "" for k in keys]
    table["chip_vaf"] = [float(chip.get(k, 0.0)) for k in keys]
    table["noise_rate"] = [float(noise.get(k, 0.0)) for k in keys]
    return table[["patient_id", *LOCUS_KEY, "weight", "special", "chip_vaf", "noise_rate"]]


def plasma_yield(rng: np.random.Generator) -> tuple[float, float]:
    """Plasma volume and cfDNA mass of one blood draw: about 3 ng of cfDNA per mL, varying.

    Parameters
    ----------
    rng
        The random stream.

    Returns
    -------
    tuple of float
        Plasma volume (mL) and cfDNA mass (ng), each rounded to 0.1.
    """
    plasma_ml = round(float(rng.uniform(3.5, 9.0)), 1)
    return plasma_ml, round(plasma_ml * float(rng.lognormal(np.log(3.0), 0.4)), 1)


def capture_efficiency(reference: Reference, loci: pd.DataFrame, sd: float = 0.3) -> np.ndarray:
    """Relative capture efficiency per locus, a property of the assay and the locus alone (the same in every
    sample and whatever other loci are simulated): a GC penalty around 45% GC times a log-normal locus factor
    seeded by the position. About 0.95 on average for a 41% GC genome.

    Parameters
    ----------
    reference
        The genome.
    loci
        Rows with chrom and 1-based pos.
    sd
        Standard deviation of the locus factor on the log scale.

    Returns
    -------
    numpy.ndarray
        One efficiency per row (1 = the settings' `molecules_per_locus`).
    """
    tid = np.array([reference.tid(c) for c in loci["chrom"]], dtype=np.int64)
    gpositions = reference.offsets[tid] + loci["pos"].to_numpy(np.int64) - 1
    gc = gc_fractions(reference, gpositions)
    out = np.empty(len(loci))
    for i, gpos in enumerate(gpositions):
        factor = np.random.default_rng(int(gpos)).standard_normal()
        out[i] = np.exp(-0.5 * ((gc[i] - 0.45) / 0.15) ** 2 + sd * factor - sd**2 / 2)
    return out
