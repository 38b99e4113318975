# The scoring teacher's embeddings (penultimate features, un-augmented, float16): computed once per
# teacher, in the shared folder, for the scorers (moderate) and selectors (herding, kcenter, d2) that
# work in embedding space; planned only when one of them is configured.
EMBEDDINGS = PLACES["embeddings"]


rule embeddings:
    input:
        data=dataset_files,
        teacher=read_model("embeddings"),
    output:
        embeddings=f"{SHARED_RESULTS}/{EMBEDDINGS}.pt",
    log:
        f"{SHARED_LOGS}/{EMBEDDINGS}.log",
    benchmark:
        f"{SHARED_BENCHMARKS}/{EMBEDDINGS}.tsv"
    wildcard_constraints:
        embeddings=shared_names("embeddings"),
    conda:
        "../../environment.yml"
    threads: config["scoring"]["threads"]
    resources:
        gpu=GPU,
        mem_mb=HOST_MEM_MB,
        runtime=runtime("embeddings"),
    params:
        spec=shared_spec("embeddings"),
    shell:
        "python -m pipeline.stages.embeddings --spec {params.spec:q} --threads {threads} "
        "--teacher {input.teacher:q} --output {output.embeddings:q} > {log:q} 2>&1"
