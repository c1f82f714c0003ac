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


rule count_molecules:
    input:
        alignments=alignment,
        index=alignment_index,
        panel="results/panel/loci.tsv",
        reference=reference_files(),
    output:
        counts="results/counts/{sample}.tsv",
        fraglen="results/counts/{sample}.fraglen.tsv",
        fragments="results/counts/{sample}.fragments.tsv",
        qc="results/counts/{sample}.qc.json",
    log:
        "logs/count_molecules/{sample}.log",
    benchmark:
        "results/benchmarks/count_molecules/{sample}.tsv"
    conda:
        "../envs/mrdtrack.yaml"
    threads: 2
    resources:
        mem_mb=1000,
        runtime=counting_runtime,
    params:
        settings=config.get("counting", {}),
    script:
        "../scripts/count_molecules.py"
