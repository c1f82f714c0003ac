rule clinical_sheet:
    input:
        config["clinical"],
    output:
        "results/sheets/clinical.tsv",
    log:
        "logs/clinical_sheet.log",
    benchmark:
        "results/benchmarks/clinical_sheet.tsv"
    conda:
        "../envs/mrdtrack.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/clinical_sheet.py"


rule clinical:
    input:
        calls="results/mrd/calls.tsv",
        clinical="results/sheets/clinical.tsv",
    output:
        joined="results/clinical/joined.tsv",
        patients="results/clinical/patients.tsv",
        counting_process="results/clinical/counting_process.tsv",
        settings="results/clinical/settings.json",
    log:
        "logs/clinical.log",
    benchmark:
        "results/benchmarks/clinical.tsv"
    conda:
        "../envs/mrdtrack.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        settings=config.get("clinical_join", {}),
    script:
        "../scripts/clinical.py"


rule survival:
    input:
        patients="results/clinical/patients.tsv",
        counting_process="results/clinical/counting_process.tsv",
    output:
        km_curves="results/survival/km_curves.tsv",
        km_summary=report(
            "results/survival/km_summary.tsv",
            caption="../report/km_summary.rst",
            category="Survival",
        ),
        cox=report(
            "results/survival/cox.tsv",
            caption="../report/cox.rst",
            category="Survival",
        ),
        endpoints=report(
            "results/survival/endpoints.tsv",
            caption="../report/endpoints.rst",
            category="Survival",
        ),
        design="results/survival/design.tsv",
        prediction="results/survival/prediction.tsv",
        landmark_data="results/survival/landmark_data.tsv",
        landmark_km_curves="results/survival/landmark_km_curves.tsv",
        landmark_km_summary="results/survival/landmark_km_summary.tsv",
        os_km_curves="results/survival/os_km_curves.tsv",
        os_km_summary="results/survival/os_km_summary.tsv",
        rmst="results/survival/rmst.tsv",
        safe_to_stop=report(
            "results/survival/safe_to_stop.tsv",
            caption="../report/safe_to_stop.rst",
            category="Survival",
        ),
        safe_to_stop_accuracy=report(
            "results/survival/safe_to_stop_accuracy.tsv",
            caption="../report/safe_to_stop_accuracy.rst",
            category="Survival",
        ),
        restart="results/survival/restart.tsv",
        summary="results/survival/summary.json",
        settings="results/survival/settings.json",
    log:
        "logs/survival.log",
    benchmark:
        "results/benchmarks/survival.tsv"
    conda:
        "../envs/mrdtrack.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        settings=config.get("survival", {}),
    script:
        "../scripts/survival.py"
