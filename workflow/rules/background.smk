rule background:
    input:
        counts=all_counts(),
        samples="results/sheets/samples.tsv",
        panel="results/panel/loci.tsv",
    output:
        context_rates="results/background/context_rates.tsv",
        locus_rates="results/background/locus_rates.tsv",
        excluded="results/background/excluded_loci.tsv",
        settings="results/background/settings.json",
    log:
        "logs/background.log",
    benchmark:
        "results/benchmarks/background.tsv"
    conda:
        "../envs/mrdtrack.yaml"
    threads: 1
    resources:
        mem_mb=cohort_mem_mb,
        runtime=30,
    params:
        settings=config.get("background", {}),
    script:
        "../scripts/background.py"
