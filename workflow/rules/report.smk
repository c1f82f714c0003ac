rule report:
    input:
        calls="results/mrd/calls.tsv",
        loci="results/mrd/loci.tsv",
        context_rates="results/background/context_rates.tsv",
        locus_rates="results/background/locus_rates.tsv",
        excluded="results/background/excluded_loci.tsv",
        fraglen=all_count_files("fraglen.tsv"),
        qc=all_count_files("qc.json"),
        samples="results/sheets/samples.tsv",
        patients="results/clinical/patients.tsv",
        joined="results/clinical/joined.tsv",
        km_curves="results/survival/km_curves.tsv",
        km_summary="results/survival/km_summary.tsv",
        cox="results/survival/cox.tsv",
        endpoints="results/survival/endpoints.tsv",
        design="results/survival/design.tsv",
        landmark_km_curves="results/survival/landmark_km_curves.tsv",
        landmark_km_summary="results/survival/landmark_km_summary.tsv",
        prediction="results/survival/prediction.tsv",
        safe_to_stop="results/survival/safe_to_stop.tsv",
        safe_to_stop_accuracy="results/survival/safe_to_stop_accuracy.tsv",
        summary="results/survival/summary.json",
        settings=[
            "results/background/settings.json",
            "results/mrd/settings.json",
            "results/clinical/settings.json",
            "results/survival/settings.json",
        ],
    output:
        html=report(
            "results/report/mrd_report.html",
            caption="../report/mrd_report.rst",
            category="MRD report",
        ),
        figures=report(
            directory("results/report/figures"),
            htmlindex="index.html",
            caption="../report/figures.rst",
            category="MRD report",
        ),
    log:
        "logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    conda:
        "../envs/mrdtrack.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        settings=config.get("report", {}),
        config=config,
    script:
        "../scripts/report.py"
