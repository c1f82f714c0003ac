"""Stage 1, the inputs (workflow/rules/common.smk, background.smk rule panel): the sample, patient and clinical
sheets, checked against their schemas, and each patient's tumor-informed panel VCF read into loci."""
