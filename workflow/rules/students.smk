# One student per (subset, distillation setting, seed), trained on the subset only.
rule students:
    input:
        unpack(student_teacher),
        data=dataset_files,
        subset=student_subset,
    output:
        run=f"{RESULTS}/{STUDENT}/run.parquet",
        epochs=f"{RESULTS}/{STUDENT}/epochs.parquet",
        model=f"{RESULTS}/{STUDENT}/model.pt",
        per_class=f"{RESULTS}/{STUDENT}/per_class.parquet",
    log:
        f"{LOGS}/{STUDENT}.log",
    benchmark:
        f"{BENCHMARKS}/{STUDENT}.tsv"
    conda:
        "../../environment.yml"
    threads: config["student"]["threads"]
    resources:
        gpu=GPU,
        mem_mb=HOST_MEM_MB,
        runtime=runtime("students"),
        checkpoint_every=CHECKPOINT_EVERY,
    params:
        spec=student_spec,
        teacher=student_teacher_arguments,
        resume=resume_folder,
    shell:
        "python -m pipeline.stages.students --spec {params.spec:q} --threads {threads} --subset {input.subset:q} "
        "{params.teacher} --epochs-out {output.epochs:q} --run-out {output.run:q} --model-out {output.model:q} "
        "--per-class-out {output.per_class:q} "
        "--resume {params.resume:q} --checkpoint-every {resources.checkpoint_every} > {log:q} 2>&1"
