rule subsets:
    input:
        f"{RESULTS}/scores/{{scorer}}.parquet",
    output:
        f"{RESULTS}/subsets/{{scorer}}/{{selector}}/keep{{keep}}.parquet",
    params:
        spec=subset_spec,
    resources:
        **CPU_JOB,
    # seconds each: bundled into few cluster jobs (group-components in slurm/config.yaml)
    group:
        "selection"
    log:
        f"{LOGS}/subsets/{{scorer}}/{{selector}}/keep{{keep}}.log",
    benchmark:
        f"{BENCHMARKS}/subsets/{{scorer}}/{{selector}}/keep{{keep}}.tsv"
    conda:
        "../../environment.yml"
    shell:
        "python -m pipeline.stages.subsets --spec {params.spec:q} --scores {input:q} --output {output:q} > {log:q} 2>&1"
