"""A sample's synthetic null panels scored together: the cost grows with their ALT molecules, and with their
columns once per panel, not with panels x columns x fragment-length classes.

A synthetic panel (own_null.py) is the real panel's loci, each with its background rate e_j and weight w_j,
holding fresh molecules at the real locus's depth: n_j informative, a_j ALT, split over length classes when
lengths weigh in; with read orientations each locus is two columns (its F1R2 and F2R1 molecules, each at its own
rate, with the locus's weight and so the same tumor share). Its likelihood-ratio statistic is that of
`likelihood.Tables` over these one-locus fragments. Of its log-likelihood ratio, only the ALT molecules (a few
per panel) and sum_j (n_j - a_j) log(1 - f u_j) depend on f, with u_j = c_j / (1 - e_j) a function of the
weight alone (drawn.py); the all-REF part is sum_j n_j log(1 - f u_j), a few sums per panel
(`drawn.TableColumns`; one set for all panels when every panel has the same depths), less what the ALT
molecules take. At 20,000 loci, 1,000 panels are then one pass over their depths and a fit of a few thousand
ALT cells, where the dense tables held 20 million cells per length class (40 million with orientations). The
statistics are those of `likelihood.Tables`, summed in another order (they agree to rounding).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mrdtrack.calling.drawn import SparseTables, TableColumns
from mrdtrack.calling.inference import lr_statistics
from mrdtrack.calling.likelihood import tumor_share

# Synthetic panels whose depths are read at a time (memory: this many x columns).
PANEL_BLOCK = 100


def synthetic_statistics(
    sizes: np.ndarray | Callable[[np.ndarray], np.ndarray],
    panels: int,
    panel: np.ndarray,
    column: np.ndarray,
    alt: np.ndarray,
    e: np.ndarray,
    w: np.ndarray,
    ratio: np.ndarray | None = None,
) -> np.ndarray:
    """The likelihood-ratio statistic of each synthetic panel (0 without ALT molecules).

    Parameters
    ----------
    sizes : numpy.ndarray or callable
        Informative molecules per column: the same for every panel (columns), or panel indices -> theirs
        (panels x columns).
    panels : int
        Synthetic panels.
    panel, column : numpy.ndarray
        The cells with ALT molecules, of the panels to score only (one cell per panel and column).
    alt : numpy.ndarray
        Their ALT molecules: per cell, or per cell and length class (cells x classes) with `ratio`.
    e, w : numpy.ndarray
        The columns' background rates and weights.
    ratio : numpy.ndarray, optional
        The length classes' tumor/non-tumor ratios, when lengths weigh in.

    Returns
    -------
    numpy.ndarray
        One statistic per panel, as `inference.lr_statistic_rows` gives it for the dense tables.
    """
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
    tables = SparseTables(
        len(scored), table[cell], counts[cell, k], e[column[cell]], c[column[cell]] * r[k], c[column[cell]],
        table, counts.sum(axis=1), u[column], c[column], _depth_sums(sizes, scored, u, c),
    )  # fmt: skip
    statistics[scored] = lr_statistics(tables)
    return statistics


def _depth_sums(
    sizes: np.ndarray | Callable[[np.ndarray], np.ndarray], scored: np.ndarray, u: np.ndarray, c: np.ndarray
) -> TableColumns:
    """The scored panels' sums over their columns' molecules (`drawn.TableColumns`): computed once and shared
    when every panel has the same depths."""
    if callable(sizes):
        return TableColumns.of(len(scored), lambda t: sizes(scored[t]), u, c, PANEL_BLOCK)
    depths = np.asarray(sizes, dtype=float)
    one = TableColumns.of(1, lambda t: np.broadcast_to(depths, (len(t), len(depths))), u, c)
    return one.subset(np.zeros(len(scored), dtype=np.int64))  # every panel the one's sums
