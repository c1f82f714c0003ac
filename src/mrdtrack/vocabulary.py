"""The words every stage shares, spelled once: MRD statuses, sample types, substitution classes, the key of a
panel locus and the length of a month. A stage that needs one of them imports it from here."""

from __future__ import annotations

POSITIVE = "positive"
NEGATIVE = "negative"
INDETERMINATE = "indeterminate"
MRD_STATUSES = (POSITIVE, NEGATIVE, INDETERMINATE)  # calls.tsv mrd_status, in the order tables list them
DETERMINATE_STATUSES = (POSITIVE, NEGATIVE)  # a test that ruled MRD in or out

PLASMA = "plasma"
NORMAL = "normal"  # matched white-blood-cell DNA
CONTROL = "control"  # healthy-donor plasma
SAMPLE_TYPES = (PLASMA, NORMAL, CONTROL)

# Pyrimidine-centred SNV classes (a G>T is counted as its reverse complement C>A).
SUBSTITUTIONS = ("C>A", "C>G", "C>T", "T>A", "T>C", "T>G")

# The columns that name one panel locus in every table (a list, as pandas selects columns by list).
LOCUS_KEY = ["chrom", "pos", "ref", "alt"]

DAYS_PER_MONTH = 30.4375  # 365.25 / 12: months from days
