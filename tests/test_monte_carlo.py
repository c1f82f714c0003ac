"""The Monte Carlo null and LOD at genome-wide panel sizes: drawn tables held by their ALT fragments give the
statistics, counts and detection probabilities that the dense tables of every column give."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy import special

import mrdtrack.calling.drawn as drawn
from mrdtrack.calling import CallSettings, LikelihoodTerms, NullDistribution
from mrdtrack.calling.drawn import drawn_statistics
from mrdtrack.calling.inference import lr_statistics
from mrdtrack.calling.likelihood import Tables, as_counts
from mrdtrack.calling.lod import FixedUniforms, detection_probability
from mrdtrack.calling.null import Cells, binomial_inverse, count_ceiling, length_ratios


class Classes:
    """Three fragment-length classes, tumor fragments shorter."""

    tumor = np.array([0.5, 0.3, 0.2])
    normal = np.array([0.2, 0.3, 0.5])
    ratio = tumor / normal


def sample_terms(
    rng: np.random.Generator, loci: int, molecules: float, spread_weights: bool
) -> LikelihoodTerms:
    n = rng.poisson(molecules, loci)
    e = 10 ** rng.uniform(-5, -2.5, loci)
    w = rng.uniform(0.2, 2.0, loci) if spread_weights else np.ones(loci)
    return LikelihoodTerms.of_fragments(n, e, w, [(0, 1), (5, 6, 7)], [10, 4])


def random_cells(rng: np.random.Generator, terms: LikelihoodTerms, tables: int, cells: int, classes: int):
    kinds = len(terms.alpha)
    flat = np.unique(rng.integers(0, tables * kinds, cells))
    _, table = np.unique(flat // kinds, return_inverse=True)
    return table, flat % kinds, rng.integers(0, classes, len(flat)), rng.integers(1, 4, len(flat))


@pytest.mark.parametrize("spread_weights", [False, True])
@pytest.mark.parametrize("classes", [None, Classes])
def test_drawn_tables_give_the_statistics_of_dense_tables(spread_weights, classes):
    rng = np.random.default_rng(3)
    terms = sample_terms(rng, 300, 40, spread_weights)
    r = length_ratios(classes)
    table, kind, k, count = random_cells(rng, terms, 1500, 5000, len(r))
    tables = int(table.max()) + 1
    dense = lr_statistics(Tables.of_draws(terms, table, kind, k, count, tables, r))
    sparse = drawn_statistics(terms, table, kind, k, count, tables, r)
    assert (dense > 0).mean() > 0.5
    np.testing.assert_allclose(sparse, dense, rtol=1e-10, atol=1e-10)


def test_many_distinct_weights_use_the_power_series_to_the_same_statistics(monkeypatch):
    rng = np.random.default_rng(4)
    terms = sample_terms(rng, 200, 40, spread_weights=True)
    table, kind, k, count = random_cells(rng, terms, 800, 2000, 1)
    tables = int(table.max()) + 1
    term_by_term = drawn_statistics(terms, table, kind, k, count, tables, np.ones(1))
    monkeypatch.setattr(drawn, "MAX_DIRECT_VALUES", 0)
    series = drawn_statistics(terms, table, kind, k, count, tables, np.ones(1))
    np.testing.assert_allclose(series, term_by_term, rtol=1e-12, atol=1e-12)


def test_binomial_inverse_is_the_search_of_the_whole_cdf_table():
    rng = np.random.default_rng(5)
    n = np.array([30, 3000, 5, 0, 400])
    p = np.array([1e-3, 0.2, 0.5, 0.1, 0.01])
    top = count_ceiling(n, p)
    table = special.bdtr(np.arange(top + 1)[:, None], as_counts(n), p)
    kind = rng.integers(0, len(n), 5000)
    u = rng.random(5000)
    expected = np.array([np.searchsorted(table[:, i], x, side="left") for i, x in zip(kind, u, strict=True)])
    assert (expected > 3).any()  # counts beyond the tabulated ones are searched too
    np.testing.assert_array_equal(binomial_inverse(u, kind, n, p, top), expected)
    np.testing.assert_array_equal(binomial_inverse(np.ones(3), np.zeros(3, int), n, p, 2), [3, 3, 3])


@pytest.mark.parametrize("f", [1e-4, 3e-3, 0.3])
def test_fixed_uniforms_hold_every_entry_with_an_alt_in_the_order_of_the_matrix(f):
    terms = sample_terms(np.random.default_rng(6), 500, 30, spread_weights=False)
    rng, reference = np.random.default_rng(7), np.random.default_rng(7)
    uniforms = FixedUniforms.draw(rng, 300, terms, cap=1e-3)  # f above the cap draws the matrix again
    matrix = reference.random((300, len(terms.alpha)))
    p = terms.alpha + f * terms.slope
    no_alt = special.bdtr(0, as_counts(terms.kind_size), p)
    table, kind = np.nonzero(matrix > no_alt)
    got_table, got_kind, got_u = uniforms.at(f)
    np.testing.assert_array_equal(got_table, table)
    np.testing.assert_array_equal(got_kind, kind)
    np.testing.assert_array_equal(got_u, matrix[table, kind])
    assert rng.integers(2**62) == reference.integers(2**62)  # the generator moved on past the whole matrix


def dense_detection(f, terms, threshold, null, matrix, settings, classes, split_seed):
    """Detection probability from the whole uniform matrix and a table of the CDF (the reference)."""
    p = terms.alpha + f * terms.slope
    size = terms.kind_size
    cdf = special.bdtr(np.arange(count_ceiling(size, p) + 1)[:, None], as_counts(size), p)
    a = np.minimum(np.array([np.searchsorted(cdf[:, i], matrix[:, i]) for i in range(len(size))]).T, size)
    table, kind = np.nonzero(a)
    count = a[table, kind]
    if classes is None:
        cells = Cells(table, kind, np.zeros(len(table), dtype=np.int64), count)
    else:
        rng = np.random.default_rng(split_seed)
        tumor = rng.binomial(count, (f * terms.slope / p)[kind])
        cells = Cells.split(table, kind, tumor, classes.tumor, rng) + Cells.split(
            table, kind, count - tumor, classes.normal, rng
        )
    stat = np.zeros(len(a))
    with_alt = np.unique(cells.table)
    _, row = np.unique(cells.table, return_inverse=True)
    dense = Tables.of_draws(
        terms, row, cells.kind, cells.k, cells.count, len(with_alt), length_ratios(classes)
    )
    stat[with_alt] = lr_statistics(dense)
    supported = cells.supported(len(a), terms, settings.min_mutant_fragments, settings.min_mutant_loci)
    return float(np.mean((null.p_value(stat) <= threshold) & supported))


@pytest.mark.parametrize("classes", [None, Classes])
def test_detection_probability_is_that_of_the_dense_tables(classes):
    rng = np.random.default_rng(8)
    n = rng.poisson(30, 400)
    terms = LikelihoodTerms.of_loci(n, 10 ** rng.uniform(-5, -3, 400), np.ones(400))
    settings = CallSettings(lod_draws=300)
    null = NullDistribution("asymptotic")
    generator = np.random.default_rng(9)
    matrix = copy.deepcopy(generator).random((300, 400))
    uniforms = FixedUniforms.draw(generator, 300, terms, cap=1e-4)
    for f in (3e-5, 1e-4, 1e-3):
        sparse = detection_probability(f, terms, 0.01, null, uniforms, settings, classes, split_seed=11)
        dense = dense_detection(f, terms, 0.01, null, matrix, settings, classes, split_seed=11)
        assert sparse == dense
    assert 0 < detection_probability(1e-4, terms, 0.01, null, uniforms, settings, classes, 11) < 1
