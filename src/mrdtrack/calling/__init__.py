"""Stage 3, calling (workflow/rules/background.smk, calling.smk): the cohort background error model, fragment
lengths, the fragment likelihood and the per-sample MRD call with its calibration."""
