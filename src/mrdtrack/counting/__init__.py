"""Stage 2, counting (workflow/rules/counting.smk): molecules (one per DNA fragment) at every panel locus of one
sample: the read model (`molecules`), the fast scanner (`bamscan`) and the per-sample tables (`sample`)."""
