rule sample_sheet:
    input:
        SAMPLE_SHEETS,
    output:
        "results/sheets/samples.tsv",
    log:
        "logs/sample_sheet.log",
    benchmark:
        "results/benchmarks/sample_sheet.tsv"
    conda:
        "../envs/mrdtrack.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/sample_sheet.py"


rule panel:
    input:
        patients=config["patients"],
        vcfs=panel_vcfs(),
        reference=reference_files(),
    output:
        "results/panel/loci.tsv",
    log:
        "logs/panel.log",
    benchmark:
        "results/benchmarks/panel.tsv"
    conda:
        "../envs/mrdtrack.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        settings=config.get("panel", {}),
    script:
        "../scripts/panel.py"


for job in sample_jobs("count_molecules", SAMPLES.index):

    rule:
        name:
            job.name
        input:
            alignments=job.each(ALIGNMENTS),
            index=job.each(INDEXES),
            panel="results/panel/loci.tsv",
            reference=reference_files(),
        output:
            counts=job.files("results/counts/{sample}.tsv"),
            fraglen=job.files("results/counts/{sample}.fraglen.tsv"),
            fragments=job.files("results/counts/{sample}.fragments.tsv"),
            qc=job.files("results/counts/{sample}.qc.json"),
            flanks=job.files("results/counts/{sample}.flanks.tsv"),
        log:
            job.log,
        benchmark:
            job.benchmark
        conda:
            "../envs/mrdtrack.yaml"
        threads: job.one(2, 1)
        resources:
            mem_mb=1000,
            runtime=counting_runtime,
        params:
            samples=job.samples,
            patients=job.values(PATIENT_OF),
            settings=config.get("counting", {}),
        script:
            "../scripts/count_molecules.py"
