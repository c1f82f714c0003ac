rule calibrate:
    input:
        counts=all_counts(),
        fragment_lengths=all_count_files("fraglen.tsv"),
        fragments=all_count_files("fragments.tsv"),
        flanks=all_count_files("flanks.tsv"),
        samples="results/sheets/samples.tsv",
        panel="results/panel/loci.tsv",
        locus_rates="results/background/locus_rates.tsv",
        context_rates="results/background/context_rates.tsv",
        excluded="results/background/excluded_loci.tsv",
    output:
        null_scores="results/mrd/null_scores.tsv",
        threshold="results/mrd/threshold.json",
        length_state="results/mrd/length_state.tsv",
        sample_rates="results/mrd/sample_rates.tsv",
        length_model="results/mrd/length_model.tsv",
        settings="results/mrd/settings.json",
    log:
        "logs/calibrate.log",
    benchmark:
        "results/benchmarks/calibrate.tsv"
    conda:
        "../envs/mrdtrack.yaml"
    threads: 4
    resources:
        mem_mb=cohort_mem_mb,
        runtime=calibration_runtime,
    params:
        settings=config.get("calling", {}),
    script:
        "../scripts/calibrate.py"


rule calling_model:
    input:
        "results/background/locus_rates.tsv",
        "results/background/excluded_loci.tsv",
        "results/mrd/null_scores.tsv",
        "results/mrd/threshold.json",
        "results/mrd/length_state.tsv",
        "results/mrd/sample_rates.tsv",
        "results/mrd/settings.json",
    output:
        "results/mrd/model/locus_rates.tsv",
        "results/mrd/model/excluded_loci.tsv",
        "results/mrd/model/null_scores.tsv",
        "results/mrd/model/threshold.json",
        "results/mrd/model/length_state.tsv",
        "results/mrd/model/sample_rates.tsv",
        "results/mrd/model/settings.json",
    log:
        "logs/calling_model.log",
    benchmark:
        "results/benchmarks/calling_model.tsv"
    conda:
        "../envs/mrdtrack.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/calling_model.py"


for job in sample_jobs("call_sample", PLASMA):

    rule:
        name:
            job.name
        input:
            counts=job.files("results/counts/{sample}.tsv"),
            fragment_lengths=job.files("results/counts/{sample}.fraglen.tsv"),
            fragments=job.files("results/counts/{sample}.fragments.tsv"),
            flanks=job.files("results/counts/{sample}.flanks.tsv"),
            samples="results/sheets/samples.tsv",
            panel="results/panel/loci.tsv",
            locus_rates="results/mrd/model/locus_rates.tsv",
            excluded="results/mrd/model/excluded_loci.tsv",
            calibration=[
                "results/mrd/model/null_scores.tsv",
                "results/mrd/model/threshold.json",
                "results/mrd/model/length_state.tsv",
                "results/mrd/model/sample_rates.tsv",
            ],
            settings="results/mrd/model/settings.json",
        output:
            call=job.files("results/mrd/samples/{sample}.call.tsv"),
            loci=job.files("results/mrd/samples/{sample}.loci.tsv"),
        log:
            job.log,
        benchmark:
            job.benchmark
        conda:
            "../envs/mrdtrack.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=15,
        params:
            samples=job.samples,
        script:
            "../scripts/call_sample.py"


rule gather_calls:
    input:
        plasma_call_files(),
    output:
        calls=report(
            "results/mrd/calls.tsv",
            caption="../report/calls.rst",
            category="MRD calls",
        ),
        loci="results/mrd/loci.tsv",
    log:
        "logs/gather_calls.log",
    benchmark:
        "results/benchmarks/gather_calls.tsv"
    conda:
        "../envs/mrdtrack.yaml"
    threads: 1
    resources:
        mem_mb=cohort_mem_mb,
        runtime=10,
    script:
        "../scripts/gather_calls.py"
