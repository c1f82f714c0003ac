"""Stage 4, outcomes (workflow/rules/clinical.smk): calls joined with clinical follow-up, Kaplan-Meier and Cox
models, landmark and time-varying analyses, prediction, and the trial's two-stage design."""
