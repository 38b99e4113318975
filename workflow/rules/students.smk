rule students:
    input:
        unpack(student_teacher),
        subset=f"{RESULTS}/subsets/{{scorer}}/{{selector}}/keep{{keep}}.parquet",
    output:
        run=f"{RESULTS}/students/{{scorer}}/{{selector}}/keep{{keep}}/{{distill}}/seed{{seed}}/run.parquet",
        epochs=f"{RESULTS}/students/{{scorer}}/{{selector}}/keep{{keep}}/{{distill}}/seed{{seed}}/epochs.parquet",
        model=f"{RESULTS}/students/{{scorer}}/{{selector}}/keep{{keep}}/{{distill}}/seed{{seed}}/model.pt",
    params:
        spec=student_spec,
        teacher=student_teacher_arguments,
    threads: config["student"]["threads"]
    resources:
        gpu=GPU,
        mem_mb=HOST_MEM_MB,
        runtime=student_runtime,
    log:
        f"{LOGS}/students/{{scorer}}/{{selector}}/keep{{keep}}/{{distill}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/students/{{scorer}}/{{selector}}/keep{{keep}}/{{distill}}/seed{{seed}}.tsv"
    conda:
        "../../environment.yml"
    shell:
        "python -m pipeline.stages.students --spec {params.spec:q} --threads {threads} --subset {input.subset:q} "
        "{params.teacher} --epochs-out {output.epochs:q} --run-out {output.run:q} --model-out {output.model:q} "
        "--resume {RESULTS}/students/{wildcards.scorer}/{wildcards.selector}/keep{wildcards.keep}/{wildcards.distill}/seed{wildcards.seed}/resume "
        "--checkpoint-every {CHECKPOINT_EVERY} > {log:q} 2>&1"
