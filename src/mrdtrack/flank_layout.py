"""The flank table's two layouts: compact, as counting writes it, and long, as the calling step thinks of it.

Compact (`flanks` contract, docs/tables.md): one row per covered flank position, with the molecules of each of
the four bases, those with read 1 forward, the discordant molecules and the fragment lengths of each base's
non-reference molecules. Long: one row per covered position and ALT base (three per position, ALT in ACGT order
without REF), with REF's and this ALT's molecules, the other two bases' together, and the ALT lengths: a panel
locus's row of the counts table, for each substitution a flank position can show. At a genome-wide signature the
long layout is three times the rows of the compact one, which counting would build, write and calling read.

Both stages use this module: counting writes compact tables, calling, the tests and the simulations that think
in rows expand them (`flank_rows`) or fold rows back (`compact_flanks`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mrdtrack.tables import columns_of

BASES = "ACGT"
#: The columns of the compact flank table, as counting writes it (`flanks` contract).
FLANK_COLUMNS = columns_of("flanks")
#: Per base (A, C, G, T): the columns of its molecules, of those with read 1 forward, of its non-REF lengths.
MOLECULE_COLUMNS = [f"{base.lower()}_molecules" for base in BASES]
F1R2_COLUMNS = [f"{base.lower()}_f1r2" for base in BASES]
LENGTH_COLUMNS = [f"{base.lower()}_lengths" for base in BASES]
#: The columns of the long layout: one row per covered position and ALT base (`flank_rows`).
FLANK_ROW_COLUMNS = [
    "chrom", "pos", "ref", "alt", "context", "ref_molecules", "alt_molecules", "other_molecules",
    "discordant_molecules", "alt_f1r2", "alt_f2r1", "ref_f1r2", "ref_f2r1", "alt_lengths",
]  # fmt: skip

# A base's index in BASES by its ASCII code (-1: not A, C, G or T); the three ALT indices of each REF index.
BASE_INDEX = np.full(256, -1, dtype=np.int64)
BASE_INDEX[np.frombuffer(BASES.encode(), dtype=np.uint8)] = np.arange(4)
ALTS = np.array([[alt for alt in range(4) if alt != ref] for ref in range(4)], dtype=np.int64)


def base_indices(bases: pd.Series | np.ndarray) -> np.ndarray:
    """Each single-base text's index in ACGT (a ValueError for anything else: flank positions are A, C, G, T)."""
    text = np.asarray(bases, dtype=object).astype("S1") if len(bases) else np.zeros(0, dtype="S1")
    index = BASE_INDEX[np.frombuffer(text.tobytes(), dtype=np.uint8)]
    if (index < 0).any() or len(index) != len(bases):
        raise ValueError("a flank position's reference base is not one of A, C, G, T")
    return index


def flank_row_index(compact: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the long rows of a compact flank table: each row's position (row of `compact`), and the REF and ALT
    base indices (ACGT) of each row; three rows per position, ALT in ACGT order without REF."""
    ref = base_indices(compact["ref"])
    position = np.repeat(np.arange(len(compact), dtype=np.int64), 3)
    return position, ref[position], ALTS[ref].ravel()


def base_counts(compact: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The four per-base count columns (`MOLECULE_COLUMNS` or `F1R2_COLUMNS`) as a positions x 4 array."""
    return compact[columns].to_numpy(dtype=np.int64).reshape(len(compact), 4)


def flank_rows(compact: pd.DataFrame) -> pd.DataFrame:
    """The long layout of a compact flank table: one row per covered position and ALT base.

    Parameters
    ----------
    compact : pandas.DataFrame
        A flank table (`flanks` contract).

    Returns
    -------
    pandas.DataFrame
        `FLANK_ROW_COLUMNS`: three rows per position in the table's order (ALT in ACGT order without REF), with
        REF's and the ALT's molecules, the other two bases' (`other_molecules`), the discordant ones, both
        alleles' molecules by read orientation and the ALT's fragment lengths.
    """
    position, ref, alt = flank_row_index(compact)
    molecules = base_counts(compact, MOLECULE_COLUMNS)
    f1r2 = base_counts(compact, F1R2_COLUMNS)
    ref_n, alt_n = molecules[position, ref], molecules[position, alt]
    ref_f1r2, alt_f1r2 = f1r2[position, ref], f1r2[position, alt]
    lengths = compact[LENGTH_COLUMNS].to_numpy(dtype=object).reshape(len(compact), 4)

    def repeated(column: str) -> np.ndarray:
        return np.repeat(compact[column].to_numpy(), 3)

    return pd.DataFrame(
        {
            "chrom": repeated("chrom").astype(object),
            "pos": repeated("pos").astype(np.int64),
            "ref": repeated("ref").astype(object),
            "alt": np.array(list(BASES), dtype=object)[alt],
            "context": repeated("context").astype(object),
            "ref_molecules": ref_n,
            "alt_molecules": alt_n,
            "other_molecules": molecules.sum(axis=1)[position] - ref_n - alt_n,
            "discordant_molecules": repeated("discordant_molecules").astype(np.int64),
            "alt_f1r2": alt_f1r2,
            "alt_f2r1": alt_n - alt_f1r2,
            "ref_f1r2": ref_f1r2,
            "ref_f2r1": ref_n - ref_f1r2,
            "alt_lengths": lengths[position, alt],
        },
        columns=FLANK_ROW_COLUMNS,
    )


def compact_flanks(rows: pd.DataFrame) -> pd.DataFrame:
    """The compact flank table of rows in the long layout (the inverse of `flank_rows`).

    Parameters
    ----------
    rows : pandas.DataFrame
        `FLANK_ROW_COLUMNS` (`other_molecules` and the `_f2r1` columns are not read: they follow from the
        rest), three consecutive rows per position, ALT in ACGT order without REF.

    Returns
    -------
    pandas.DataFrame
        One row per position (`flanks` contract), in the rows' order. A ValueError when the rows do not come
        in such triples.
    """
    if len(rows) % 3:
        raise ValueError(f"{len(rows)} flank rows: not three per position")
    first = rows.iloc[::3].reset_index(drop=True)
    ref = base_indices(first["ref"])
    alt = base_indices(rows["alt"]).reshape(-1, 3)
    same = [rows[c].to_numpy().reshape(-1, 3) for c in ("chrom", "pos", "ref")]
    if not all((column == column[:, :1]).all() for column in same) or not np.array_equal(alt, ALTS[ref]):
        raise ValueError("flank rows do not come as one row per ALT base of each position, in ACGT order")
    n = len(first)
    at = np.arange(n)[:, None]
    molecules, f1r2 = np.zeros((n, 4), dtype=np.int64), np.zeros((n, 4), dtype=np.int64)
    lengths = np.full((n, 4), "", dtype=object)
    molecules[at[:, 0], ref] = first["ref_molecules"].to_numpy(dtype=np.int64)
    f1r2[at[:, 0], ref] = first["ref_f1r2"].to_numpy(dtype=np.int64)
    molecules[at, alt] = rows["alt_molecules"].to_numpy(dtype=np.int64).reshape(-1, 3)
    f1r2[at, alt] = rows["alt_f1r2"].to_numpy(dtype=np.int64).reshape(-1, 3)
    lengths[at, alt] = rows["alt_lengths"].to_numpy(dtype=object).reshape(-1, 3)
    return compact_table(
        first[["chrom", "pos", "ref", "context"]],
        molecules,
        f1r2,
        first["discordant_molecules"].to_numpy(dtype=np.int64),
        lengths,
    )


def compact_table(
    where: pd.DataFrame, molecules: np.ndarray, f1r2: np.ndarray, discordant: np.ndarray, lengths: np.ndarray
) -> pd.DataFrame:
    """The flank table (`FLANK_COLUMNS`, typed) of positions `where` (chrom, pos, ref, context) and their per-base
    molecules, read-1-forward molecules (positions x 4), discordant molecules and joined lengths (positions x 4)."""
    columns: dict[str, object] = {
        "chrom": where["chrom"].to_numpy().astype(object),
        "pos": where["pos"].to_numpy().astype(np.int64),
        "ref": where["ref"].to_numpy().astype(object),
        "context": where["context"].to_numpy().astype(object),
    }
    columns |= {name: molecules[:, k].astype(np.int64) for k, name in enumerate(MOLECULE_COLUMNS)}
    columns |= {name: f1r2[:, k].astype(np.int64) for k, name in enumerate(F1R2_COLUMNS)}
    columns["discordant_molecules"] = np.array(discordant, dtype=np.int64)  # a copy, as every column here
    columns |= {name: lengths[:, k] for k, name in enumerate(LENGTH_COLUMNS)}
    # the columns are fresh arrays: kept as they are (copy=False), not copied into pandas' 2-D blocks, which took
    # longer than computing them for a genome-wide sample's 920,000 positions
    return pd.DataFrame(columns, columns=FLANK_COLUMNS, copy=False)
