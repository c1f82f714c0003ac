rule call_mrd:
    input:
        counts=all_counts(),
        fragment_lengths=all_count_files("fraglen.tsv"),
        fragments=all_count_files("fragments.tsv"),
        samples="results/sheets/samples.tsv",
        panel="results/panel/loci.tsv",
        locus_rates="results/background/locus_rates.tsv",
        excluded="results/background/excluded_loci.tsv",
    output:
        calls=report(
            "results/mrd/calls.tsv",
            caption="../report/calls.rst",
            category="MRD calls",
        ),
        loci="results/mrd/loci.tsv",
        null_scores="results/mrd/null_scores.tsv",
        length_model="results/mrd/length_model.tsv",
    log:
        "logs/call_mrd.log",
    benchmark:
        "results/benchmarks/call_mrd.tsv"
    conda:
        "../envs/mrdtrack.yaml"
    threads: 4
    resources:
        mem_mb=cohort_mem_mb,
        runtime=calling_runtime,
    params:
        settings=config.get("calling", {}),
    script:
        "../scripts/call_mrd.py"
