# With data.download: true, the dataset's files fetched once, before any job that loads them (each
# reads this job's record), and where Snakemake runs: on a cluster the login node, the one with
# internet, rather than a dozen compute nodes downloading at once.
localrules:
    datasets,


rule datasets:
    output:
        record=f"{SHARED_RESULTS}/{DATASET}.json",
    log:
        f"{SHARED_LOGS}/{DATASET}.log",
    benchmark:
        f"{SHARED_BENCHMARKS}/{DATASET}.tsv"
    conda:
        "../../environment.yml"
    params:
        spec=shared_spec("datasets"),
    shell:
        "python -m pipeline.stages.datasets --spec {params.spec:q} --output {output.record:q} > {log:q} 2>&1"
