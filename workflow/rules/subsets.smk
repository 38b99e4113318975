# One subset per (scorer, selector, keep fraction): the kept samples' indices.
rule subsets:
    input:
        scores=rules.scores.output.scores,
    output:
        subset=f"{RESULTS}/{SUBSET}.parquet",
    log:
        f"{LOGS}/{SUBSET}.log",
    benchmark:
        f"{BENCHMARKS}/{SUBSET}.tsv"
    # seconds each: bundled into few cluster jobs (group-components in slurm/config.yaml)
    group:
        "selection"
    conda:
        "../../environment.yml"
    resources:
        **CPU_JOB,
    params:
        spec=subset_spec,
    shell:
        "python -m pipeline.stages.subsets --spec {params.spec:q} --scores {input.scores:q} "
        "--output {output.subset:q} > {log:q} 2>&1"
