"""The compiled kernel for clusters of flank positions: families built once per cluster, not once per position.

A cluster of flank positions (flanks.py) holds tens of reference positions that the same reads cover. Counted as
panel loci are (`bamscan._molecules`, position by position), each position merges the same reads into the same
templates, groups them by the same fragment coordinates and clusters the same UMIs again. Here the reads of a
cluster are merged into templates, grouped by coordinates and clustered into UMI families once; each position
then only calls each template's base and each family's consensus.

The result is exactly the per-position one. A template's fields (fragment coordinates, read 1 orientation, family
size, UMI, the BELOW_* bits) are those of its first read at the position, so they are the cluster's when all
its reads carry the same fields (else the cluster goes the per-position way). A family is the per-position
one where all of its coordinate group's templates cover the position; where only some do (a read ending inside
the cluster, a deletion), that group is grouped and clustered again from the templates present there, in
their order there, as the per-position kernel does. The molecules are counted here too (per position and base,
the non-reference ones' lengths kept), so Python handles one small tally per cluster, no object per position.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mrdtrack.counting.bamscan import (
    DISCORDANT_CODE,
    NO_CALL,
    O_BASE,
    O_KEYBIT,
    O_LEFT,
    O_LENGTH,
    O_LOCUS,
    O_NAME,
    O_NAME_LEN,
    O_R1FWD,
    O_SHORT,
    O_SIZE,
    O_UMI,
    O_UMI_LEN,
    P_DUPLEX,
    P_KEEP_SINGLE,
    P_MERGE_MATES,
    P_MIN_FAMILY,
    P_MISMATCHES,
    P_MODE,
    _consensus,
    _coordinate_groups,
    _duplex_consensus,
    _family_orientation,
    _family_size,
    _fill_copies,
    _molecules,
    _one_umi,
    _same_bytes,
    _same_read,
    _slots,
    _umi_families,
)
from mrdtrack.counting.flanks import FlankTally
from mrdtrack.flank_layout import BASE_INDEX

ABSENT = -1  # a template without a read at a position
SHARED, IRREGULAR, COLLISION = 0, 1, 2  # what the kernel says


def cluster_flank_tally(
    ints: np.ndarray,
    hashes: np.ndarray,
    names: np.ndarray,
    umis: np.ndarray,
    loci_of_cluster: np.ndarray,
    refs: np.ndarray,
    params: np.ndarray,
    fraction: float,
) -> FlankTally | None:
    """The molecules of one cluster of flank positions from its observation rows (bamscan's table), counted; the
    positions' REF bases are `refs` (ASCII). None when two read names share a hash (the reference engine then
    counts the cluster, as for panel loci)."""
    first, n_positions = int(loci_of_cluster[0]), len(loci_of_cluster)
    tally = np.zeros((n_positions, T_COLUMNS), dtype=np.int64)
    tally[:, T_REF] = BASE_INDEX[refs]
    non_reference = np.empty((len(ints), 3), dtype=np.int64)  # at most one molecule per observation
    m, status = _flank_tally(
        ints, hashes, names, umis, len(ints), first, params, fraction, tally, non_reference
    )
    if status == COLLISION:
        return None
    if status == IRREGULAR:  # reads of one template with different fields: the per-position kernel
        _fill_copies(ints, hashes, len(ints))  # the rows as the per-position kernel reads them
        rows, _dropped, collision = _molecules(ints, hashes, names, umis, len(ints), params, fraction)
        if collision:
            return None
        m = _count_rows(rows, first, tally, non_reference)
    return FlankTally(
        tally[:, :T_F1R2], tally[:, T_F1R2:T_DISCORDANT], tally[:, T_DISCORDANT], non_reference[:m].copy()
    )


# Columns of a cluster's tally: molecules of A, C, G, T, those with read 1 forward, discordant ones, and (given)
# the position's REF as a base index.
T_F1R2, T_DISCORDANT, T_REF, T_COLUMNS = 4, 8, 9, 10


@njit(cache=True)
def _flank_tally(ints, hashes, names, umis, n, first, params, fraction, tally, non_reference):
    """Count the molecules of a cluster's observations in `tally` and `non_reference` (see _count): (the number
    of non-reference rows, SHARED), or (0, IRREGULAR: a template's reads differ in their fields; nothing
    counted) or (0, COLLISION)."""
    heads, calls, head_rows, status = _template_calls(ints, hashes, names, umis, n, first, tally.shape[0])
    if status != SHARED:
        return 0, status
    if params[P_MODE] <= 2:  # flag, consensus, none: each template is a molecule
        return _template_molecules(ints, heads, calls, tally, non_reference), SHARED
    return _family_molecules(ints, names, umis, heads, calls, head_rows, params, fraction, tally,
                             non_reference), SHARED  # fmt: skip


@njit(cache=True)
def _count_rows(rows, first, tally, non_reference):
    """Count the molecule rows of bamscan._molecules (locus, base, read 1 forward, length, ...)."""
    m = 0
    for row in range(len(rows)):
        m = _count(tally, non_reference, m, rows[row, 0] - first, rows[row, 1], rows[row, 2], rows[row, 3])
    return m


@njit(cache=True)
def _template_calls(ints, hashes, names, umis, n, first, n_positions):
    """The cluster's templates (read name and key bit; bamscan._templates) in one pass over its rows (a pass
    costs what the table's size is): each template's first row (`heads`, in file order), its observation code at
    each position (bamscan._template_calls: its first base, or DISCORDANT_CODE when exactly two bases differ;
    NO_CALL without a base; ABSENT without a read there) and its first row there (its place in the
    per-position order of templates), and SHARED, IRREGULAR (a read without its template's fields) or COLLISION
    (two names share a hash)."""
    capacity = n // max(n_positions, 1) + 16  # templates; grown when a cluster holds more
    slots, heads = _slots(capacity), np.empty(capacity, dtype=np.int64)
    calls = np.full((capacity, n_positions), ABSENT, dtype=np.int16)
    head_rows = np.full((capacity, n_positions), -1, dtype=np.int32)
    n_bases = np.zeros((capacity, n_positions), dtype=np.int8)  # 0, 1, 2 (agreeing), -2 (differing), 3
    row, count, status = 0, 0, SHARED
    while True:
        row, count, status = _add_rows(ints, hashes, names, umis, row, n, first, slots, heads, calls, head_rows,
                                       n_bases, count)  # fmt: skip
        if row == n or status != SHARED:
            break
        slots, heads, calls, head_rows, n_bases = _grown(hashes, slots, heads, calls, head_rows, n_bases)
    for template in range(count):
        for position in range(n_positions):
            if n_bases[template, position] == -2:
                calls[template, position] = DISCORDANT_CODE
    return heads[:count], calls[:count], head_rows[:count], status


@njit(cache=True)
def _add_rows(ints, hashes, names, umis, start, n, first, slots, heads, calls, head_rows, n_bases, count):
    """Add rows from `start` to their templates (see _template_calls) until the rows end or a new template finds
    no room: (the first row not added, the number of templates, status). A read's rows are consecutive (the
    record kernel writes them together)."""
    template = -1
    for row in range(start, n):
        if template < 0 or not _same_read(ints, hashes, row - 1, row):  # a read's first row
            slot, template = _find_template(ints, hashes, names, slots, heads, row)
            if template == -2:
                return row, count, COLLISION
            if template >= 0 and not _same_fields(ints, umis, row, heads[template]):
                return row, count, IRREGULAR
            if template == -1:
                if count == len(heads):
                    return row, count, SHARED
                template = count
                slots[slot], heads[template] = template, row
                count += 1
        position, base = ints[row, O_LOCUS] - first, ints[row, O_BASE]
        if head_rows[template, position] < 0:
            head_rows[template, position] = row
            calls[template, position] = NO_CALL
        seen = n_bases[template, position]
        if base == NO_CALL:  # bamscan._add_observation
            continue
        if seen == 0:
            calls[template, position] = base
            n_bases[template, position] = 1
        elif seen == 1:
            n_bases[template, position] = 2 if base == calls[template, position] else -2
        else:
            n_bases[template, position] = 3
    return n, count, SHARED


@njit(cache=True)
def _find_template(ints, hashes, names, slots, heads, row):
    """(slot, template) of the read whose first row is `row` in the hash table `slots` of the templates so far
    (`heads`): template -1 (and its empty slot) for a new template, -2 when another name has its hash."""
    mask = np.uint64(len(slots) - 1)
    slot = (hashes[row] ^ (hashes[row] >> np.uint64(29))) & mask
    while True:
        template = slots[slot]
        if template < 0:
            return slot, -1
        other = heads[template]
        if hashes[other] == hashes[row]:
            if ints[row, O_KEYBIT] != ints[other, O_KEYBIT] or not _same_bytes(
                names, ints[row, O_NAME], ints[row, O_NAME_LEN], ints[other, O_NAME], ints[other, O_NAME_LEN]
            ):
                return slot, -2
            return slot, template
        slot = (slot + np.uint64(1)) & mask


@njit(cache=True)
def _grown(hashes, slots, heads, calls, head_rows, n_bases):
    """The template arrays with twice the room, and the hash table rebuilt for it."""
    count = len(heads)
    calls = np.concatenate((calls, np.full((count, calls.shape[1]), ABSENT, dtype=np.int16)))
    head_rows = np.concatenate((head_rows, np.full((count, calls.shape[1]), -1, dtype=np.int32)))
    n_bases = np.concatenate((n_bases, np.zeros((count, calls.shape[1]), dtype=np.int8)))
    heads = np.concatenate((heads, np.empty(count, dtype=np.int64)))
    slots = _slots(2 * count)
    mask = np.uint64(len(slots) - 1)
    for template in range(count):
        key = hashes[heads[template]]
        slot = (key ^ (key >> np.uint64(29))) & mask
        while slots[slot] >= 0:
            slot = (slot + np.uint64(1)) & mask
        slots[slot] = template
    return slots, heads, calls, head_rows, n_bases


@njit(cache=True)
def _same_fields(ints, umis, row, head):
    """Whether the read at `row` carries the fields of its template's first read (at `head`), so that a template
    is the same whichever of its reads comes first at a position."""
    for column in (O_LEFT, O_LENGTH, O_R1FWD, O_SIZE, O_SHORT):
        if ints[row, column] != ints[head, column]:
            return False
    return _same_bytes(umis, ints[row, O_UMI], ints[row, O_UMI_LEN], ints[head, O_UMI], ints[head, O_UMI_LEN])


@njit(cache=True, inline="always")
def _count(tally, non_reference, m, position, base, forward, length):
    """Count a molecule in its position's row of `tally` (see _flank_tally); a non-reference one also as a row
    (position, base index, length) of `non_reference`, the m-th. Returns the next m."""
    if base == DISCORDANT_CODE:
        tally[position, T_DISCORDANT] += 1
        return m
    index = _base_index(base)
    if index < 0:
        return m
    tally[position, index] += 1
    tally[position, T_F1R2 + index] += forward
    if index == tally[position, T_REF]:
        return m
    non_reference[m, 0] = position
    non_reference[m, 1] = index
    non_reference[m, 2] = length
    return m + 1


@njit(cache=True, inline="always")
def _base_index(base):
    """A base's index in ACGT (-1: another code)."""
    if base == 65:
        return 0
    if base == 67:
        return 1
    if base == 71:
        return 2
    return 3 if base == 84 else -1


@njit(cache=True)
def _template_molecules(ints, heads, calls, tally, non_reference):
    """bamscan._molecules' flag, consensus and none modes: each template with a call is a molecule, unless its
    reads are below the consensus filters."""
    m = 0
    for template in range(calls.shape[0]):
        head = heads[template]
        for position in range(calls.shape[1]):
            call = calls[template, position]
            if call != ABSENT and call != NO_CALL and ints[head, O_SHORT] == 0:
                m = _count(tally, non_reference, m, position, call, ints[head, O_R1FWD], ints[head, O_LENGTH])
    return m


@njit(cache=True)
def _cluster_families(ints, names, umis, heads, group_members, group_starts, params):
    """The families of the whole cluster, as bamscan._molecules forms them at a position where all templates
    are present: members (template indices, family by family, read 1 forward ones first), bounds (each family's
    start in members, and the end), split (where each family's read 1 reverse members start), size,
    orientation, and per coordinate group its first family (and the end) and whether its families' orientation
    depends on the order of its templates."""
    n_templates, n_groups = len(heads), len(group_starts) - 1
    members = np.empty(n_templates, dtype=np.int64)
    bounds = np.zeros(n_templates + 1, dtype=np.int64)
    split = np.empty(n_templates, dtype=np.int64)
    size = np.empty(n_templates, dtype=np.int64)
    orientation = np.empty(n_templates, dtype=np.int64)
    group_families = np.zeros(n_groups + 1, dtype=np.int64)
    ambiguous = np.zeros(n_groups, dtype=np.bool_)
    n_families = 0
    for g in range(n_groups):
        group = group_members[group_starts[g] : group_starts[g + 1]]
        ambiguous[g] = params[P_MERGE_MATES] == 0 and _tie_break_depends_on_order(ints, names, heads, group)
        if params[P_MODE] == 3 and len(group) > 1 and not _one_umi(ints, umis, heads, group):
            family, _seed_rows = _umi_families(
                ints, umis, heads, group, params[P_MISMATCHES], params[P_DUPLEX]
            )
            for seed in np.unique(family):
                n_families = _add_family(ints, names, heads, group[family == seed], n_families, members, bounds,
                                         split, size, orientation)  # fmt: skip
        else:
            n_families = _add_family(
                ints, names, heads, group, n_families, members, bounds, split, size, orientation
            )
        group_families[g + 1] = n_families
    return members, bounds, split, size, orientation, group_families, ambiguous


@njit(cache=True)
def _add_family(ints, names, heads, family, n_families, members, bounds, split, size, orientation):
    at = bounds[n_families]
    for forward in (1, 0):
        if forward == 0:
            split[n_families] = at
        for template in family:
            if ints[heads[template], O_R1FWD] == forward:
                members[at] = template
                at += 1
    bounds[n_families + 1] = at
    size[n_families] = _family_size(ints, heads, family)
    orientation[n_families] = _family_orientation(ints, names, heads, family)
    return n_families + 1


@njit(cache=True)
def _tie_break_depends_on_order(ints, names, heads, group):
    """Whether two templates of one read name (mates not merged) differ in read 1 orientation: a family's
    orientation on a tie is then the one of whichever comes first, so the group follows the per-position order."""
    for a in range(len(group)):
        for b in range(a + 1, len(group)):
            row_a, row_b = heads[group[a]], heads[group[b]]
            if ints[row_a, O_R1FWD] != ints[row_b, O_R1FWD] and _same_bytes(
                names,
                ints[row_a, O_NAME],
                ints[row_a, O_NAME_LEN],
                ints[row_b, O_NAME],
                ints[row_b, O_NAME_LEN],
            ):
                return True
    return False


@njit(cache=True)
def _family_molecules(ints, names, umis, heads, calls, head_rows, params, fraction, tally, non_reference):
    """bamscan._molecules' UMI and coordinates modes: the cluster's families where all of a coordinate group's
    templates are present at a position, the group's templates present there regrouped where only some are.
    One loop, its arrays unpacked once: numba counts references to each array a helper is handed."""
    group_members, group_starts = _template_groups(ints, heads)
    members, bounds, split, size, orientation, group_families, ambiguous = _cluster_families(
        ints, names, umis, heads, group_members, group_starts, params
    )
    duplex = params[P_MODE] == 3 and params[P_DUPLEX] != 0
    rules = np.array([params[P_MIN_FAMILY] if params[P_MODE] == 3 else 1, 1 if duplex else 0,
                      params[P_KEEP_SINGLE]], dtype=np.int64)  # fmt: skip
    m = 0
    for g in range(len(group_starts) - 1):
        start, end = group_starts[g], group_starts[g + 1]
        length = ints[heads[group_members[start]], O_LENGTH]
        for position in range(calls.shape[1]):
            n_present = 0
            for k in range(start, end):
                n_present += calls[group_members[k], position] != ABSENT
            if n_present == end - start and not ambiguous[g]:  # the cluster's families (bamscan._add_family)
                for f in range(group_families[g], group_families[g + 1]):
                    if duplex:
                        base, strands = _duplex_call(calls, position, members, bounds[f], split[f], bounds[f + 1],
                                                     fraction)  # fmt: skip
                    else:
                        base, strands = (
                            _family_call(calls, position, members, bounds[f], bounds[f + 1], fraction),
                            1,
                        )
                    if base != NO_CALL and size[f] >= rules[0] and (strands == 2 or not duplex or rules[2]):
                        m = _count(tally, non_reference, m, position, base, orientation[f], length)
            elif n_present > 0:
                here = _present_in_order(calls, head_rows, position, group_members[start:end], n_present)
                m = _regrouped(tally, non_reference, m, position, calls[:, position], ints, names, umis, heads, here, params,
                               fraction, rules)  # fmt: skip
    return m


@njit(cache=True)
def _template_groups(ints, heads):
    """bamscan._coordinate_groups of the templates, by their fragment coordinates alone (not their locus)."""
    keyed = np.empty((len(heads), ints.shape[1]), dtype=np.int64)
    for template in range(len(heads)):
        keyed[template] = ints[heads[template]]
        keyed[template, O_LOCUS] = 0
    return _coordinate_groups(keyed, np.arange(len(heads)))


@njit(cache=True, inline="always")
def _family_call(calls, position, members, start, end, fraction):
    """bamscan._consensus of members[start:end] at a position, without its allocations when their calls agree
    (the usual case)."""
    call = NO_CALL
    n = 0
    for k in range(start, end):
        code = calls[members[k], position]
        if code == NO_CALL:
            continue
        if call != NO_CALL and code != call:
            return _consensus(calls[:, position], members[start:end], fraction)
        call = code
        n += 1
    if n > 1 and fraction > 1:  # agreeing calls are still too few for a fraction above 1
        return _consensus(calls[:, position], members[start:end], fraction)
    return call


@njit(cache=True, inline="always")
def _duplex_call(calls, position, members, start, split, end, fraction):
    """bamscan._duplex_consensus of members[start:end] at a position, its read 1 reverse ones from `split`."""
    first = _family_call(calls, position, members, start, split, fraction)
    second = _family_call(calls, position, members, split, end, fraction)
    if first == NO_CALL or second == NO_CALL:
        call = second if first == NO_CALL else first
        return call, 0 if call == NO_CALL else 1
    return (first if first == second else DISCORDANT_CODE), 2


@njit(cache=True)
def _present_in_order(calls, head_rows, position, group, n_present):
    """The templates of `group` present at a position, in the order of their first rows there (insertion sort:
    a coordinate group is small)."""
    here = np.empty(n_present, dtype=np.int64)
    n = 0
    for template in group:
        if calls[template, position] == ABSENT:
            continue
        b = n - 1
        while b >= 0 and head_rows[here[b], position] > head_rows[template, position]:
            here[b + 1] = here[b]
            b -= 1
        here[b + 1] = template
        n += 1
    return here


@njit(cache=True)
def _regrouped(
    tally, non_reference, m, position, at, ints, names, umis, heads, group, params, fraction, rules
):
    """The molecules of the templates of one coordinate group present at a position, formed there as
    bamscan._molecules forms them."""
    if params[P_MODE] == 3 and len(group) > 1 and not _one_umi(ints, umis, heads, group):
        family, _seed_rows = _umi_families(ints, umis, heads, group, params[P_MISMATCHES], params[P_DUPLEX])
        for seed in np.unique(family):
            m = _position_family(
                tally,
                non_reference,
                m,
                position,
                at,
                ints,
                names,
                heads,
                group[family == seed],
                fraction,
                rules,
            )
        return m
    return _position_family(tally, non_reference, m, position, at, ints, names, heads, group, fraction, rules)


@njit(cache=True)
def _position_family(tally, non_reference, m, position, at, ints, names, heads, members, fraction, rules):
    """bamscan._add_family at one position: the family's molecule unless `rules` drop it."""
    if rules[1]:
        base, strands = _duplex_consensus(ints, heads, at, members, fraction)
    else:
        base, strands = _consensus(at, members, fraction), 1
    if base == NO_CALL or _family_size(ints, heads, members) < rules[0]:
        return m
    if rules[1] and strands < 2 and not rules[2]:
        return m
    orientation = _family_orientation(ints, names, heads, members)
    return _count(tally, non_reference, m, position, base, orientation, ints[heads[members[0]], O_LENGTH])
