# One subset per (scorer, selector, keep fraction): the kept samples' indices.
rule subsets:
    input:
        unpack(subset_inputs),
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
        # (the cutoff scores and the embeddings: one param, so the command, a rerun trigger, is unchanged)
        cutoff=selection_arguments,
    shell:
        "python -m pipeline.stages.subsets --spec {params.spec:q} --scores {input.scores:q} "
        "{params.cutoff} --output {output.subset:q} > {log:q} 2>&1"


# A random draw's subset for one student seed (selection.random_draws: per_student_seed): the
# same stage, seeded by the draw.
rule drawn_subsets:
    input:
        unpack(subset_inputs),
    output:
        subset=f"{RESULTS}/{DRAWN_SUBSET}.parquet",
    log:
        f"{LOGS}/{DRAWN_SUBSET}.log",
    benchmark:
        f"{BENCHMARKS}/{DRAWN_SUBSET}.tsv"
    group:
        "selection"
    conda:
        "../../environment.yml"
    resources:
        **CPU_JOB,
    params:
        spec=subset_spec,
        # (the cutoff scores and the embeddings: one param, so the command, a rerun trigger, is unchanged)
        cutoff=selection_arguments,
    shell:
        "python -m pipeline.stages.subsets --spec {params.spec:q} --scores {input.scores:q} "
        "{params.cutoff} --output {output.subset:q} > {log:q} 2>&1"
