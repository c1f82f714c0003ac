"""The panel-locus tally: counting many clusters' molecule tables at once (LociTally) gives exactly the numbers
of the per-locus `tally`, the specification of the count table's columns (docs/tables.md), and the fragment-length
histogram of the REF and ALT molecules."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from mrdtrack.counting import sample as sample_module
from mrdtrack.counting.molecules import (
    DISCORDANT,
    INDEL_ALT,
    INDEL_OTHER,
    INDEL_REF,
    Locus,
    LocusMolecules,
    allele_codes,
    cluster_rows_of,
)
from mrdtrack.counting.sample import LociTally, tally
from mrdtrack.tables import columns_of

COUNTS = columns_of("counts")[7:]


def random_cluster(rng: np.random.Generator, start: int) -> tuple[list[Locus], list[LocusMolecules]]:
    """A cluster of SNV and indel loci with random molecules: some loci have none, some only discordant or other
    bases, a few many ALT molecules."""
    loci, molecules = [], []
    for k in range(int(rng.integers(1, 6))):
        ref = str(rng.choice(list("ACGT")))
        if rng.random() < 0.3:
            locus = Locus("chr1", start + 10 * k, ref, ref + "T")  # an insertion
            calls = [INDEL_REF, INDEL_ALT, INDEL_OTHER, DISCORDANT]
        else:
            locus = Locus("chr1", start + 10 * k, ref, str(rng.choice([b for b in "ACGT" if b != ref])))
            calls = [*"ACGT", DISCORDANT]
        n = int(rng.choice([0, 1, 3, 40]))
        weights = rng.dirichlet(np.ones(len(calls)))
        loci.append(locus)
        molecules.append(
            LocusMolecules(
                bases=np.array([ord(c) for c in rng.choice(calls, n, p=weights)], dtype=np.int64),
                read1_forward=rng.random(n) < 0.5,
                lengths=rng.integers(100, 200, n),
                family_sizes=rng.integers(1, 7, n),
                reads=n + int(rng.integers(0, 5)),
                fragments=rng.integers(0, 1 << 40, n),
            )
        )
    return loci, molecules


def reference_lengths(loci: list[Locus], molecules: list[LocusMolecules]) -> Counter[tuple[str, int]]:
    """Molecules per (allele, fragment length), REF and ALT ones, locus by locus."""
    lengths: Counter[tuple[str, int]] = Counter()
    for locus, at_locus in zip(loci, molecules, strict=True):
        for allele, code in zip(("ref", "alt"), allele_codes(locus), strict=True):
            lengths.update((allele, int(n)) for n in at_locus.lengths[at_locus.bases == code])
    return lengths


@pytest.mark.parametrize("batch", [1, 50, 1 << 18])
def test_the_tally_of_many_clusters_at_once_equals_the_per_locus_tally(monkeypatch, batch):
    monkeypatch.setattr(sample_module, "TALLY_BATCH", batch)  # one cluster, a few, or all in one batch
    rng = np.random.default_rng(3)
    clusters = [random_cluster(rng, 10_000 * i) for i in range(60)]
    loci_tally = LociTally()
    for loci, molecules in clusters:
        codes = np.array([allele_codes(locus) for locus in loci], dtype=np.int64)
        loci_tally.add(cluster_rows_of(molecules), codes)
    expected = pd.DataFrame(
        [tally(locus, at) for loci, molecules in clusters for locus, at in zip(loci, molecules, strict=True)],
        columns=COUNTS,
    )
    found = pd.DataFrame(loci_tally.columns(), columns=COUNTS)
    assert (expected["alt_molecules"] > 0).any() and (expected["ref_molecules"] == 0).any()
    pd.testing.assert_frame_equal(found, expected, check_exact=True)
    every = [pair for loci, molecules in clusters for pair in zip(loci, molecules, strict=True)]
    assert loci_tally.lengths == reference_lengths([p[0] for p in every], [p[1] for p in every])


def test_a_tally_of_no_loci_has_the_columns_and_no_rows():
    assert {name: len(values) for name, values in LociTally().columns().items()} == dict.fromkeys(COUNTS, 0)


def test_the_median_fragment_length_is_that_of_one_length_per_molecule():
    rng = np.random.default_rng(5)
    for n in [*range(1, 12), 101, 1000]:
        alleles, lengths = rng.choice(["ref", "alt"], n), rng.integers(100, 110 if n < 20 else 400, n)
        histogram = Counter(zip(alleles.tolist(), lengths.tolist(), strict=True))
        assert sample_module._median_length(histogram) == float(np.median(lengths))
    assert sample_module._median_length(Counter()) is None


@pytest.mark.parametrize(
    "values",
    [
        [],
        [167, 0, 167, 42],
        [3, -1, 3],
        [5, sample_module.DENSE_LENGTHS, 5],
        [sample_module.DENSE_LENGTHS - 1],
    ],
    ids=["none", "lengths", "negative", "very long", "longest dense"],
)
def test_a_histogram_of_lengths_is_np_unique_with_counts(values):
    """Fragment lengths are counted without a sort where they are small non-negative integers; any others (an
    unpaired read's odd length, a chimeric pair's huge one) are sorted, with the same result."""
    array = np.array(values, dtype=np.int64)
    found, expected = sample_module._histogram(array), np.unique(array, return_counts=True)
    assert [part.tolist() for part in found] == [part.tolist() for part in expected]
