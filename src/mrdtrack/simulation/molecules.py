"""Layer 1 of a simulated sample: the cfDNA molecules captured around each locus (fragment lengths, tumor
origin, the ALT, CHIP, deletions, UMIs, mapping quality) and the bases in which each differs from the
reference (its biological ALT, then PCR and damage errors shared by every copy)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from mrdtrack.simulation.panels import capture_efficiency, panel_weights, sort_loci
from mrdtrack.simulation.records import LocusKey, SimulationSettings
from mrdtrack.simulation.reference import BASES, Reference, base_sites, cpg_sites
from mrdtrack.vocabulary import LOCUS_KEY


def fragment_length_pmf(mode: float, settings: SimulationSettings, tumor: bool = False) -> np.ndarray:
    """Probability of each fragment length 0..max: a mononucleosome peak at `mode` whose left shoulder has the
    ~10.4 bp helical periodicity of nucleosome-protected DNA, a short-fragment tail and a dinucleosome peak.

    Parameters
    ----------
    mode
        The mononucleosome peak (bp).
    settings
        The length limits and the dinucleosome share.
    tumor
        Tumor-derived DNA: a wider left shoulder and more short fragments.

    Returns
    -------
    numpy.ndarray
        Probabilities of lengths 0..`settings.max_fragment_length`, summing to 1.
    """
    length = np.arange(settings.max_fragment_length + 1, dtype=float)
    sd_left, sd_right = (20.0, 14.0) if tumor else (14.0, 12.0)
    z = np.where(length <= mode, (length - mode) / sd_left, (length - mode) / sd_right)
    peak = np.exp(-0.5 * z**2)
    short = (0.15 if tumor else 0.05) * np.exp(-0.5 * ((length - mode + 45) / 30.0) ** 2)
    # The ripple grows with distance below the mode so it never out-tops the mononucleosome peak itself.
    depth = np.clip((mode - length) / 40.0, 0.0, 1.0)
    ripple = 1.0 + 0.35 * depth * np.cos(2 * np.pi * (length - mode) / 10.4)
    mono = (peak + short) * ripple
    di = np.exp(-0.5 * ((length - 2 * mode - 10) / 25.0) ** 2)
    pmf = (
        mono / mono.sum() * (1 - settings.dinucleosome_fraction)
        + di / di.sum() * settings.dinucleosome_fraction
    )
    pmf[: settings.min_fragment_length] = 0.0
    return pmf / pmf.sum()


def locus_table(
    reference: Reference,
    loci: pd.DataFrame,
    tumor_loci: pd.DataFrame | None,
    chip: Mapping[LocusKey, float],
    settings: SimulationSettings,
) -> pd.DataFrame:
    """The simulated loci (duplicates collapsed, in reference order) with what the layers need of each: tumor
    weight, CHIP VAF, extra noise rate, contig index, global position, base codes and capture efficiency."""
    table = sort_loci(loci[LOCUS_KEY].drop_duplicates(), reference)
    keys = list(zip(table["chrom"], table["pos"].astype(int), table["ref"], table["alt"], strict=True))
    weight = dict.fromkeys(keys, 0.0)
    if tumor_loci is not None and len(tumor_loci):
        tumor_keys = zip(
            tumor_loci["chrom"],
            tumor_loci["pos"].astype(int),
            tumor_loci["ref"],
            tumor_loci["alt"],
            strict=True,
        )
        for key, w in zip(tumor_keys, panel_weights(tumor_loci), strict=True):
            if key not in weight:
                raise ValueError(f"tumor locus {key} is not among the simulated loci")
            weight[key] = float(w)
    table["weight"] = [weight[k] for k in keys]
    table["chip_vaf"] = [float(chip.get(k, 0.0)) for k in keys]
    table["noise"] = [float(settings.locus_noise.get(k, 0.0)) for k in keys]
    table["tid"] = [reference.tid(c) for c in table["chrom"]]
    table["gpos"] = reference.offsets[table["tid"].to_numpy()] + table["pos"].to_numpy() - 1
    table["ref_code"] = [BASES.index(b) for b in table["ref"]]
    table["alt_code"] = [BASES.index(b) for b in table["alt"]]
    table["efficiency"] = capture_efficiency(reference, table, settings.capture_sd)
    return table


@dataclass
class Molecules:
    """Every simulated molecule as parallel arrays (artifact molecules included: `kind` > 0)."""

    locus: np.ndarray
    kind: np.ndarray  # 0 real, 1 mapq0 artifact, 2 qcfail artifact
    tumor: np.ndarray
    alt: np.ndarray  # carries the ALT biologically (tumor, CHIP or artifact)
    chip: np.ndarray
    length: np.ndarray  # molecule length (bases)
    gstart: np.ndarray  # global 0-based reference start
    span: np.ndarray  # reference span = length + dlen
    del_at: np.ndarray  # molecule offset where the deletion starts (== length when none)
    dlen: np.ndarray
    f1r2: np.ndarray  # read 1 on the forward strand
    umi: np.ndarray  # (n, umi_len) codes
    mapq_left: np.ndarray
    mapq_right: np.ndarray
    locus_base: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))


def draw_molecules(
    reference: Reference,
    table: pd.DataFrame,
    tf: float,
    settings: SimulationSettings,
    rng: np.random.Generator,
) -> Molecules:
    n_loci = len(table)
    counts = rng.poisson(settings.molecules_per_locus * table["efficiency"].to_numpy())
    n_art = settings.n_mapq0 + settings.n_qcfail
    art_locus = rng.integers(0, n_loci, n_art) if n_loci else np.zeros(0, int)
    locus = np.concatenate([np.repeat(np.arange(n_loci), counts), art_locus]).astype(np.int64)
    kind = np.concatenate([np.zeros(counts.sum()), np.ones(settings.n_mapq0), np.full(settings.n_qcfail, 2)])
    n = locus.size
    real = kind == 0
    tumor = (rng.random(n) < tf) & real
    normal_len = rng.choice(
        settings.max_fragment_length + 1, n, p=fragment_length_pmf(settings.normal_fragment_mode, settings)
    )
    tumor_len = rng.choice(
        settings.max_fragment_length + 1,
        n,
        p=fragment_length_pmf(settings.tumor_fragment_mode, settings, True),
    )
    length = np.where(tumor, tumor_len, normal_len).astype(np.int64)
    weight = table["weight"].to_numpy()[locus]
    alt = tumor & (rng.random(n) < weight / 2)
    chip = ~tumor & real & (rng.random(n) < table["chip_vaf"].to_numpy()[locus])
    has_del = (rng.random(n) < settings.deletion_fraction) & real
    dlen = np.where(has_del, rng.integers(1, 4, n), 0)
    alt = (alt | chip | ~real) & ~has_del
    del_at = np.where(has_del, rng.integers(1, np.maximum(length, 2)), length)
    inside = np.floor(rng.random(n) * np.maximum(dlen, 1)).astype(np.int64)
    offset = np.where(has_del, del_at + inside, np.floor(rng.random(n) * length).astype(np.int64))
    gstart = table["gpos"].to_numpy()[locus] - offset
    f1r2 = rng.random(n) < 0.5
    umi = rng.integers(0, 4, (n, sum(settings.umi_lengths)), dtype=np.uint8)
    mapq_left, mapq_right = _draw_mapq(n, settings, rng), _draw_mapq(n, settings, rng)
    mapq_left[kind == 1] = 0
    mapq_right[kind == 1] = 0
    mol = Molecules(
        locus,
        kind.astype(np.int8),
        tumor,
        alt,
        chip,
        length,
        gstart,
        length + dlen,
        del_at,
        dlen,
        f1r2,
        umi,
        mapq_left,
        mapq_right,
    )
    mol = _drop_off_contig(reference, table, mol)
    _separate_umis(mol, settings, rng)
    return mol


def _draw_mapq(n: int, settings: SimulationSettings, rng: np.random.Generator) -> np.ndarray:
    u = rng.random(n)
    mapq = np.full(n, 60, dtype=np.int64)
    reduced = u < settings.reduced_mapq_fraction
    low = (u >= settings.reduced_mapq_fraction) & (
        u < settings.reduced_mapq_fraction + settings.low_mapq_fraction
    )
    mapq[reduced] = rng.choice([21, 25, 27, 33, 39, 40, 46, 52, 57], reduced.sum())
    mapq[low] = rng.choice([0, 1, 3, 6, 9, 12, 15, 19], low.sum())
    return mapq


def _drop_off_contig(reference: Reference, table: pd.DataFrame, mol: Molecules) -> Molecules:
    """Fragments hanging over a contig end cannot exist; loci near ends just get fewer molecules."""
    tid = table["tid"].to_numpy()[mol.locus]
    lo = reference.offsets[tid]
    hi = lo + np.asarray(reference.lengths)[tid]
    keep = (mol.gstart >= lo) & (mol.gstart + mol.span <= hi)
    if keep.all():
        return mol
    return Molecules(**{f.name: getattr(mol, f.name)[keep] for f in fields(mol) if f.name != "locus_base"})


def _coordinate_groups(mol: Molecules) -> np.ndarray:
    """Group id per molecule: same start and span = same duplicate coordinates (either strand, as counted)."""
    key = mol.gstart * 1024 + mol.span
    _, inverse = np.unique(key, return_inverse=True)
    return inverse


def _separate_umis(mol: Molecules, settings: SimulationSettings, rng: np.random.Generator) -> None:
    """Distinct molecules at identical coordinates get UMIs far apart (as a real UMI design guarantees with
    high probability), so a one-error UMI copy can never be mistaken for another molecule."""
    groups = _coordinate_groups(mol)
    sizes = np.bincount(groups)
    for g in np.flatnonzero(sizes > 1):
        members = np.flatnonzero(groups == g)
        while True:
            umis = mol.umi[members]
            dist = (umis[:, None, :] != umis[None, :, :]).sum(axis=2)
            np.fill_diagonal(dist, umis.shape[1])
            if dist.min() >= settings.min_umi_distance:
                break
            mol.umi[members[1:]] = rng.integers(0, 4, (members.size - 1, umis.shape[1]), dtype=np.uint8)


@dataclass
class Variants:
    """The bases in which molecules differ from the reference: molecule, global position, new base code."""

    mol: np.ndarray
    gpos: np.ndarray
    base: np.ndarray


def molecule_variants(
    reference: Reference,
    table: pd.DataFrame,
    mol: Molecules,
    settings: SimulationSettings,
    rng: np.random.Generator,
) -> Variants:
    """Bases in which a molecule differs from the reference: its biological ALT, then PCR/damage errors."""
    n = mol.locus.size
    idx = np.arange(n)
    locus_g = table["gpos"].to_numpy()[mol.locus]
    noise = rng.random(n) < table["noise"].to_numpy()[mol.locus]
    at_locus = (mol.alt | noise) & (mol.dlen == 0)
    parts = [
        (idx[at_locus], locus_g[at_locus], table["alt_code"].to_numpy()[mol.locus][at_locus].astype(np.uint8))
    ]
    parts.append(_flat_errors(reference, mol, settings.substitution_rate, rng))
    cpg_c, cpg_g = cpg_sites(reference)
    parts.append(_site_errors(mol, np.ones(n, bool), cpg_c, 3, settings.cpg_deamination_rate, rng))
    parts.append(_site_errors(mol, np.ones(n, bool), cpg_g, 0, settings.cpg_deamination_rate, rng))
    g_sites, c_sites = base_sites(reference, 2), base_sites(reference, 1)
    parts.append(_site_errors(mol, mol.f1r2, g_sites, 3, settings.oxog_rate, rng))
    parts.append(_site_errors(mol, ~mol.f1r2, c_sites, 0, settings.oxog_rate, rng))
    m = np.concatenate([p[0] for p in parts])
    g = np.concatenate([p[1] for p in parts])
    b = np.concatenate([p[2] for p in parts]).astype(np.uint8)
    # A later variant at the same base wins (an error on top of the ALT); keep positions outside deletions.
    offset = g - mol.gstart[m]
    in_del = (offset >= mol.del_at[m]) & (offset < mol.del_at[m] + mol.dlen[m])
    m, g, b = m[~in_del], g[~in_del], b[~in_del]
    _, last = np.unique(np.stack([m, g])[:, ::-1], axis=1, return_index=True)
    keep = np.sort(m.size - 1 - last)
    variants = Variants(m[keep], g[keep], b[keep])
    mol.locus_base = _locus_bases(reference, table, mol, variants)
    return variants


def _flat_errors(
    reference: Reference, mol: Molecules, rate: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_err = rng.poisson(rate * mol.length)
    m = np.repeat(np.arange(mol.locus.size), n_err)
    offset = np.floor(rng.random(m.size) * mol.length[m]).astype(np.int64)
    g = mol.gstart[m] + offset + (offset >= mol.del_at[m]) * mol.dlen[m]
    ref = reference.codes[g]
    transition = rng.random(m.size) < 0.5
    # A<->G and C<->T are transitions (code xor 2); otherwise one of the two transversions.
    transversion = np.where(rng.random(m.size) < 0.5, ref ^ 1, 3 - ref)
    return m, g, np.where(transition, ref ^ 2, transversion).astype(np.uint8)


def _site_errors(
    mol: Molecules,
    eligible: np.ndarray,
    sites: np.ndarray,
    new_base: int,
    rate: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Errors at context sites (sorted global positions) inside each eligible molecule, `rate` per site."""
    lo = np.searchsorted(sites, mol.gstart)
    hi = np.searchsorted(sites, mol.gstart + mol.span)
    n_err = rng.poisson(rate * (hi - lo) * eligible)
    m = np.repeat(np.arange(mol.locus.size), n_err)
    pick = lo[m] + np.floor(rng.random(m.size) * (hi - lo)[m]).astype(np.int64)
    return m, sites[pick], np.full(m.size, new_base, np.uint8)


def _locus_bases(reference: Reference, table: pd.DataFrame, mol: Molecules, variants: Variants) -> np.ndarray:
    """Each molecule's true base at its locus (4 when deleted), after all molecule-level changes."""
    locus_g = table["gpos"].to_numpy()[mol.locus]
    base = reference.codes[locus_g].copy()
    base[mol.dlen > 0] = 4
    hit = variants.gpos == locus_g[variants.mol]
    base[variants.mol[hit]] = variants.base[hit]
    return base
