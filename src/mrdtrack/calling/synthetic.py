"""A sample's synthetic null panels scored together: the cost grows with their ALT molecules, and with their
loci once per panel, not with panels x loci x fragment-length classes.

A synthetic panel (own_null.py) is the real panel's loci, each with its background rate e_i and weight w_i,
holding the molecules of a flank position: n_i informative, a_i ALT, split over length classes when lengths
weigh in. Its likelihood-ratio statistic is that of `likelihood.Tables` over these one-locus fragments. Of its
log-likelihood ratio, only the ALT molecules (a few per panel) and sum_i (n_i - a_i) log(1 - f u_i) depend on
f, with u_i = c_i / (1 - e_i) a function of the weight alone (drawn.py); the all-REF part is
sum_i n_i log(1 - f u_i), a few sums per panel (`drawn.TableColumns`), less what the ALT molecules take. At
20,000 loci, 1,000 panels are then one pass over their depths and a fit of a few thousand ALT cells, where the
dense tables held 20 million cells per length class. The statistics are those of `likelihood.Tables`, summed in
another order (they agree to rounding).
"""

from __future__ import annotations

import numpy as np

from mrdtrack.calling.drawn import SparseTables, TableColumns
from mrdtrack.calling.fraglen import LengthClasses, clip_lengths, parse_lengths
from mrdtrack.calling.inference import lr_statistics
from mrdtrack.calling.likelihood import tumor_share

# Synthetic panels read at a time (memory: this many x loci indices).
PANEL_BLOCK = 100


def alt_cells(pool_a: np.ndarray, draw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (panel, locus) of the drawn panels whose flank position holds ALT molecules: its panel, locus
    and pool row, panel by panel.

    Parameters
    ----------
    pool_a : numpy.ndarray
        ALT molecules per pool row.
    draw : numpy.ndarray
        Panels x loci: the pool row of each synthetic locus.

    Returns
    -------
    tuple of numpy.ndarray
        Panel, locus and pool row of each cell.
    """
    has_alt = pool_a > 0
    panels, loci, rows = [], [], []
    for first in range(0, len(draw), PANEL_BLOCK):
        block = draw[first : first + PANEL_BLOCK]
        panel, locus = np.nonzero(has_alt[block])
        panels.append(panel + first)
        loci.append(locus)
        rows.append(block[panel, locus])
    empty = np.zeros(0, dtype=np.int64)
    return tuple(np.concatenate(x or [empty]).astype(np.int64) for x in (panels, loci, rows))  # type: ignore[return-value]


def class_counts(alt_lengths: np.ndarray, rows: np.ndarray, classes: LengthClasses) -> np.ndarray:
    """ALT molecules per length class (rows x classes) of these pool rows, from their `alt_lengths` text."""
    k = len(classes.normal)
    unique, inverse = np.unique(rows, return_inverse=True)
    table = np.zeros((len(unique), k), dtype=np.int64)
    for i, row in enumerate(unique):
        lengths = parse_lengths(str(alt_lengths[row]))
        table[i] = np.bincount(classes.class_of_length[clip_lengths(lengths)], minlength=k)[:k]
    return table[inverse.ravel()]


def synthetic_statistics(
    pool_n: np.ndarray,
    draw: np.ndarray,
    panel: np.ndarray,
    locus: np.ndarray,
    alt: np.ndarray,
    e: np.ndarray,
    w: np.ndarray,
    ratio: np.ndarray | None = None,
) -> np.ndarray:
    """The likelihood-ratio statistic of each drawn synthetic panel (0 without ALT molecules).

    Parameters
    ----------
    pool_n : numpy.ndarray
        Informative molecules per pool row.
    draw : numpy.ndarray
        Panels x loci: the pool row of each synthetic locus.
    panel, locus : numpy.ndarray
        The cells with ALT molecules (`alt_cells`), for the panels to score only.
    alt : numpy.ndarray
        Their ALT molecules: per cell, or per cell and length class (cells x classes) with `ratio`.
    e, w : numpy.ndarray
        The real loci's background rates and weights.
    ratio : numpy.ndarray, optional
        The length classes' tumor/non-tumor ratios, when lengths weigh in.

    Returns
    -------
    numpy.ndarray
        One statistic per panel of `draw`, as `inference.lr_statistic_rows` gives it for the dense tables.
    """
    panels = len(draw)
    statistics = np.zeros(panels)
    scored = np.unique(panel)
    if not scored.size:
        return statistics
    e, w = np.asarray(e, dtype=float), np.asarray(w, dtype=float)
    c = tumor_share(e, w)
    u = c / (1 - e)
    table = np.searchsorted(scored, panel)
    counts = np.asarray(alt, dtype=float).reshape(len(panel), -1)
    r = np.ones(1) if ratio is None else np.asarray(ratio, dtype=float)
    cell, k = np.nonzero(counts)
    shared = TableColumns.of(len(scored), lambda t: pool_n[draw[scored[t]]], u, c, PANEL_BLOCK)
    tables = SparseTables(
        len(scored), table[cell], counts[cell, k], e[locus[cell]], c[locus[cell]] * r[k], c[locus[cell]],
        table, counts.sum(axis=1), u[locus], c[locus], shared,
    )  # fmt: skip
    statistics[scored] = lr_statistics(tables)
    return statistics
