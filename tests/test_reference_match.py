"""The panel positions the reference check leaves out of its comparison."""

import numpy as np
import pandas as pd

from mrdtrack.counting.reference_match import _panel_positions


def test_panel_positions_are_every_base_of_each_locus_ref_span_per_contig_sorted_once():
    loci = pd.DataFrame({
        "chrom": ["chr2", "chr1", "chr1", "chr2", "chr1"],
        "pos": [50, 10, 12, 50, 11],
        "ref": ["A", "ACGT", "G", "AT", "C"],
    })  # fmt: skip

    positions = _panel_positions(loci)

    assert sorted(positions) == ["chr1", "chr2"]
    np.testing.assert_array_equal(positions["chr1"], [9, 10, 11, 12])
    np.testing.assert_array_equal(positions["chr2"], [49, 50])
