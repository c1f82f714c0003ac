"""Fragment-length evidence: DNA shed by tumor cells is shorter than that of the blood cells around it.

An ALT molecule of length l is `r(l) = g_T(l) / g_N(l)` times more likely to come from the tumor than from a
background error, with `g_T` the tumor's and `g_N` the non-tumor fragment-length distribution. Weighted that
way (as INVAR's size weighting does), an ALT molecule at locus i has likelihood `e_i + q_i r(l)` instead of
`e_i + q_i`, with `q_i = (1 - e_i) f w_i / 2` (score.py).

Where the two distributions come from, without the sample's own mutant molecules:

- `g_N` of a sample: its own REF molecules' lengths (`results/counts/{sample}.fraglen.tsv`), smoothed and
  steadied by the cohort's REF lengths where the sample has few molecules;
- `g_T`: the cohort's ALT molecules at the plasma samples' own usable panel loci, minus what background errors
  explain there (each sample's expected background ALT count spread over its REF lengths). The scored sample is
  left out. It is kept as a tumor/normal ratio `rho(l)` of the cohort, shrunk toward 1 by `prior` pseudo
  tumor molecules (a cohort with little tumor DNA learns little and weighs little), and a sample's
  `r(l) = rho(l) / sum_l g_N(l) rho(l)`, so that its `g_T = g_N r` sums to 1 whatever its size profile.

Lengths are grouped into classes of similar `log r` (`LOG_RATIO_EDGES`), so that a sample's data stay a small
table of ALT counts per locus and class: the likelihood, its exact Monte Carlo null and the LOD keep the shape
and speed of the counts-only model, which is the one-class case.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mrdtrack.tables import columns_of

MAX_LENGTH = 1000  # longer fragments share the last class, which carries no length information (r = 1)
MAX_RATIO = 10.0  # |log r| is capped: one molecule of a rare length cannot decide a call
LOG_RATIO_EDGES = np.array([-1.5, -0.9, -0.5, -0.25, -0.08, 0.08, 0.25, 0.5, 0.9, 1.5])
REF_PRIOR_MOLECULES = 500.0  # a sample's REF lengths are steadied by this many molecules of the cohort's
LENGTH_COLUMNS = columns_of("length_model")  # mrdtrack.tables.CONTRACTS
STATE_COLUMNS = columns_of("length_state")  # mrdtrack.tables.CONTRACTS


@dataclass(frozen=True)
class LengthClasses:
    """One sample's fragment-length classes: lengths of similar tumor/non-tumor ratio, grouped.

    Parameters
    ----------
    class_of_length : numpy.ndarray
        The class of each length 0..MAX_LENGTH.
    normal, tumor : numpy.ndarray
        Each class's share of non-tumor and of tumor molecules (each sums to 1).
    """

    class_of_length: np.ndarray  # int per length 0..MAX_LENGTH
    normal: np.ndarray  # g_N per class (sums to 1)
    tumor: np.ndarray  # g_T per class (sums to 1)

    @property
    def ratio(self) -> np.ndarray:
        """r per class: tumor / non-tumor likelihood (1 for a class no molecule can fall in)."""
        return np.divide(self.tumor, self.normal, out=np.ones_like(self.tumor), where=self.normal > 0)

    def table(self, lengths_per_locus: Iterable[np.ndarray]) -> np.ndarray:
        """ALT molecules per locus (rows) and length class (columns)."""
        rows = [
            np.bincount(self.class_of_length[clip_lengths(lengths)], minlength=len(self.normal))
            for lengths in lengths_per_locus
        ]
        return np.array(rows, dtype=np.int64).reshape(-1, len(self.normal))


def clip_lengths(lengths: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(lengths, dtype=np.int64), 0, MAX_LENGTH)


def histogram(lengths: np.ndarray, molecules: np.ndarray | None = None) -> np.ndarray:
    """Molecules per length 0..MAX_LENGTH (longer ones in the last cell)."""
    weights = None if molecules is None else np.asarray(molecules, dtype=float)
    return np.bincount(clip_lengths(lengths), weights=weights, minlength=MAX_LENGTH + 1).astype(float)


def smooth(values: np.ndarray, bandwidth: float) -> np.ndarray:
    """Gaussian kernel smoothing over lengths (the overflow cell is left as it is)."""
    if bandwidth <= 0:
        return values.astype(float)
    half = int(np.ceil(4 * bandwidth))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / bandwidth) ** 2)
    out = values.astype(float).copy()
    out[:-1] = np.convolve(values[:-1], kernel / kernel.sum(), mode="same")
    return out


def normalized(values: np.ndarray) -> np.ndarray:
    total = values.sum()
    return values / total if total > 0 else np.full(len(values), 1 / len(values))


@dataclass
class LengthModel:
    """What the cohort knows about fragment lengths, to derive each sample's length classes (`classes`).

    Parameters
    ----------
    ref : dict of str to numpy.ndarray
        Per sample, REF molecules per length.
    excess : dict of str to numpy.ndarray
        Per plasma sample, its own-panel ALT lengths minus the background expected there.
    cohort_ref : numpy.ndarray
        REF molecules per length, all samples.
    prior : float
        Pseudo tumor molecules that shrink the tumor/non-tumor ratio toward 1.
    bandwidth : float
        Gaussian smoothing of the histograms, in bp.
    total_excess : numpy.ndarray or None
        The excess of every plasma sample, summed (None: sum `excess`).
    """

    ref: dict[str, np.ndarray]  # sample -> REF molecules per length
    excess: dict[str, np.ndarray]  # plasma sample -> its own-panel ALT lengths minus the expected background
    cohort_ref: np.ndarray  # REF molecules per length, all samples
    prior: float  # pseudo tumor molecules that shrink rho toward 1
    bandwidth: float
    total_excess: np.ndarray | None = None  # the excess of every plasma sample, summed (None: sum `excess`)

    def state(self) -> pd.DataFrame:
        """What a sample's own call needs of the cohort (STATE_COLUMNS): with the sample's own REF lengths and
        excess, `LengthModel.for_sample` gives the classes `classes` gives here."""
        return pd.DataFrame(
            {
                "length": np.arange(MAX_LENGTH + 1),
                "cohort_ref": self.cohort_ref,
                "tumor_excess": self.summed(),
            }
        )

    @classmethod
    def for_sample(
        cls, state: pd.DataFrame, sample_id: str, ref: np.ndarray | None, excess: np.ndarray | None,
        prior: float, bandwidth: float,
    ) -> LengthModel:  # fmt: skip
        """The cohort's model (its `state()`) around one sample: its REF lengths (None: it has none) and its own
        excess (None when it did not teach the cohort model, e.g. a control)."""
        own = {} if excess is None else {sample_id: excess}
        return cls(
            {} if ref is None else {sample_id: ref}, own, state["cohort_ref"].to_numpy(dtype=float), prior, bandwidth,
            state["tumor_excess"].to_numpy(dtype=float),
        )  # fmt: skip

    def summed(self) -> np.ndarray:
        if self.total_excess is not None:
            return self.total_excess
        return sum(self.excess.values(), np.zeros(MAX_LENGTH + 1))

    def tumor_ratio(self, left_out: str | None = None) -> tuple[np.ndarray, float]:
        """(rho per length, estimated tumor molecules behind it), without `left_out`'s own ALT molecules."""
        excess = self.summed().copy()
        if left_out in self.excess:
            excess = excess - self.excess[left_out]
        excess[-1] = 0.0
        # The excess sums to the tumor molecules (background subtracted, unbiased); its positive part gives
        # their shape. Clipping makes noise positive, so the positive part's own sum would see tumor DNA in
        # every cohort: the weight of the shape is the unclipped total.
        molecules = max(float(excess.sum()), 0.0)
        shape = normalized(np.maximum(smooth(excess, self.bandwidth), 0.0))
        normal = normalized(smooth(self.cohort_ref, self.bandwidth))
        g_tumor = (molecules * shape + self.prior * normal) / (molecules + self.prior)
        rho = np.divide(g_tumor, normal, out=np.ones_like(normal), where=normal > 0)
        rho[-1] = 1.0
        return np.clip(rho, 1 / MAX_RATIO, MAX_RATIO), molecules

    def sample_normal(self, sample_id: str) -> np.ndarray:
        """g_N of the sample: its REF lengths plus `REF_PRIOR_MOLECULES` of the cohort's, smoothed."""
        own = self.ref.get(sample_id, np.zeros(MAX_LENGTH + 1))
        cohort = normalized(self.cohort_ref) * REF_PRIOR_MOLECULES
        return normalized(smooth(own + cohort, self.bandwidth))

    def classes(self, sample_id: str) -> LengthClasses:
        rho, _ = self.tumor_ratio(left_out=sample_id)
        normal = self.sample_normal(sample_id)
        ratio = rho / float((normal * rho).sum())
        tumor = normal * ratio
        class_of_length = np.searchsorted(LOG_RATIO_EDGES, np.log(ratio), side="right")
        class_of_length[-1] = len(LOG_RATIO_EDGES) + 1  # the overflow class: no length information
        k = len(LOG_RATIO_EDGES) + 2
        # Normalized again: summed in classes, the densities can exceed 1 by a rounding error, which numpy's
        # multinomial draws refuse (a cohort without tumor lengths puts every molecule in one class).
        return LengthClasses(
            class_of_length,
            normalized(np.bincount(class_of_length, weights=normal, minlength=k)),
            normalized(np.bincount(class_of_length, weights=tumor, minlength=k)),
        )

    def summary(self) -> pd.DataFrame:
        """The cohort's length model, all samples included: one row per length (for people and the report)."""
        rho, molecules = self.tumor_ratio()
        normal = normalized(smooth(self.cohort_ref, self.bandwidth))
        tumor = normal * rho / float((normal * rho).sum())
        lengths = np.arange(MAX_LENGTH + 1)
        keep = normal > 1e-7
        return pd.DataFrame(
            {
                "length": lengths[keep],
                "normal_density": normal[keep],
                "tumor_density": tumor[keep],
                "ratio": (tumor / np.where(normal > 0, normal, 1))[keep],
                "tumor_molecules": molecules,
            }
        )


def ref_histograms(fragment_lengths: pd.DataFrame) -> dict[str, np.ndarray]:
    """REF molecules per length for each sample of a long table (sample_id, allele, length, molecules)."""
    ref = fragment_lengths[fragment_lengths["allele"] == "ref"]
    return {
        str(sample): histogram(group["length"].to_numpy(), group["molecules"].to_numpy())
        for sample, group in ref.groupby("sample_id", sort=True)
    }


def parse_lengths(text: str) -> np.ndarray:
    """The `alt_lengths` cell of a count table: comma-separated lengths."""
    return np.array([int(v) for v in text.split(",")], dtype=np.int64) if text else np.zeros(0, np.int64)


def build_length_model(
    ref: Mapping[str, np.ndarray],
    own_panel_alt: Mapping[str, tuple[np.ndarray, float]],
    prior: float,
    bandwidth: float,
) -> LengthModel:
    """The cohort's fragment-length model.

    Parameters
    ----------
    ref : mapping of str to numpy.ndarray
        Per sample, REF molecules per length (`ref_histograms`).
    own_panel_alt : mapping of str to (numpy.ndarray, float)
        Per plasma sample, the lengths of its ALT molecules at its own usable panel loci and the background
        ALT molecules expected there (sum of n_i e_i).
    prior : float
        Pseudo tumor molecules that shrink the learned ratio toward 1 (`calling.fragment_length_prior`).
    bandwidth : float
        Gaussian smoothing in bp (`calling.fragment_length_bandwidth`).

    Returns
    -------
    LengthModel
    """
    cohort_ref = sum(ref.values(), np.zeros(MAX_LENGTH + 1))
    excess = {
        sample: own_excess(ref.get(sample, cohort_ref), cohort_ref, lengths, expected)
        for sample, (lengths, expected) in own_panel_alt.items()
    }
    return LengthModel(dict(ref), excess, cohort_ref, prior, bandwidth)


def own_excess(
    ref: np.ndarray, cohort_ref: np.ndarray, alt_lengths: np.ndarray, expected: float
) -> np.ndarray:
    """A plasma sample's ALT molecules per length at its own panel minus the background expected there, spread
    over its REF lengths (steadied by the cohort's)."""
    normal = normalized(ref + normalized(cohort_ref) * REF_PRIOR_MOLECULES)
    return histogram(alt_lengths) - expected * normal
