# One job per scorer. The scorer's own source file is an input, so editing it reruns that
# scorer's jobs and everything downstream of them, and nothing else.
rule scores:
    input:
        source=f"{REPO}/pipeline/scorers/{{scorer}}.py",
        teacher=teacher_files(SCORING_TEACHER)["model"],
        dynamics=teacher_files(SCORING_TEACHER)["dynamics"],
    output:
        f"{RESULTS}/scores/{{scorer}}.parquet",
    params:
        spec=score_spec,
    threads: config["scoring"]["threads"]
    log:
        f"{LOGS}/scores/{{scorer}}.log",
    benchmark:
        f"{BENCHMARKS}/scores/{{scorer}}.tsv"
    conda:
        "../../environment.yml"
    shell:
        "python -m pipeline.score --spec {params.spec:q} --threads {threads} "
        "--teacher {input.teacher:q} --dynamics {input.dynamics:q} --output {output:q} > {log:q} 2>&1"
