# Every teacher, trained once on the full training set, and kept in the shared folder for every
# experiment whose teacher has the same spec. Training jobs save their state in a
# resume/ folder beside their model (params.resume) and continue from it when started again.
rule teachers:
    input:
        data=dataset_files,
        checkpoint=teacher_checkpoint,
    output:
        model=f"{SHARED_RESULTS}/{TEACHER}/model.pt",
        epochs=f"{SHARED_RESULTS}/{TEACHER}/epochs.parquet",
        dynamics=f"{SHARED_RESULTS}/{TEACHER}/dynamics.parquet",
        logits=f"{SHARED_RESULTS}/{TEACHER}/train_logits.pt",
        class_std=f"{SHARED_RESULTS}/{TEACHER}/class_logit_std.parquet",
    log:
        f"{SHARED_LOGS}/{TEACHER}.log",
    benchmark:
        f"{SHARED_BENCHMARKS}/{TEACHER}.tsv"
    conda:
        "../../environment.yml"
    threads: teacher_threads
    resources:
        gpu=teacher_gpus,
        mem_mb=HOST_MEM_MB,
        runtime=runtime("teachers"),
        checkpoint_every=CHECKPOINT_EVERY,
    params:
        spec=shared_spec("teachers"),
        python=teacher_launcher,
        resume=resume_folder,
    shell:
        "{params.python} -m pipeline.stages.teachers --spec {params.spec:q} --threads {threads} "
        "--model-out {output.model:q} --epochs-out {output.epochs:q} --dynamics-out {output.dynamics:q} "
        "--logits-out {output.logits:q} --class-std-out {output.class_std:q} "
        "--resume {params.resume:q} --checkpoint-every {resources.checkpoint_every} > {log:q} 2>&1"


# Prune, then distill: a pruned teacher lives beside the teachers and is named like one.
rule pruned_teachers:
    input:
        data=dataset_files,
        teacher=read_model("pruned_teachers"),
    output:
        model=f"{SHARED_RESULTS}/{PRUNED_TEACHER}/model.pt",
        epochs=f"{SHARED_RESULTS}/{PRUNED_TEACHER}/epochs.parquet",
        rounds=f"{SHARED_RESULTS}/{PRUNED_TEACHER}/rounds.parquet",
        logits=f"{SHARED_RESULTS}/{PRUNED_TEACHER}/train_logits.pt",
        class_std=f"{SHARED_RESULTS}/{PRUNED_TEACHER}/class_logit_std.parquet",
    log:
        f"{SHARED_LOGS}/{PRUNED_TEACHER}.log",
    benchmark:
        f"{SHARED_BENCHMARKS}/{PRUNED_TEACHER}.tsv"
    conda:
        "../../environment.yml"
    threads: pruned_teacher_threads
    resources:
        gpu=GPU,
        mem_mb=HOST_MEM_MB,
        runtime=runtime("pruned_teachers"),
        checkpoint_every=CHECKPOINT_EVERY,
    params:
        spec=shared_spec("pruned_teachers"),
        resume=resume_folder,
    shell:
        "python -m pipeline.stages.pruned_teachers --spec {params.spec:q} --threads {threads} --teacher {input.teacher:q} "
        "--model-out {output.model:q} --epochs-out {output.epochs:q} --rounds-out {output.rounds:q} "
        "--logits-out {output.logits:q} --class-std-out {output.class_std:q} "
        "--resume {params.resume:q} --checkpoint-every {resources.checkpoint_every} > {log:q} 2>&1"


# Cached teacher outputs (distillation settings with cached_views: K): the teacher's logits on K
# fixed augmented views of every training sample, computed once and read by all its students.
rule teacher_views:
    input:
        data=dataset_files,
        teacher=read_model("teacher_views"),
    output:
        views=f"{SHARED_RESULTS}/{TEACHER_VIEWS}.pt",
    log:
        f"{SHARED_LOGS}/{TEACHER_VIEWS}.log",
    benchmark:
        f"{SHARED_BENCHMARKS}/{TEACHER_VIEWS}.tsv"
    conda:
        "../../environment.yml"
    threads: config["scoring"]["threads"]
    resources:
        gpu=GPU,
        mem_mb=HOST_MEM_MB,
        runtime=runtime("teacher_views"),
    params:
        spec=shared_spec("teacher_views"),
    shell:
        "python -m pipeline.stages.teacher_views --spec {params.spec:q} --threads {threads} "
        "--teacher {input.teacher:q} --output {output.views:q} > {log:q} 2>&1"


# MDSLR's class statistics for reshaping from one seeded augmented pass of the teacher (settings
# with reshape_view_seed): the pass teacher_ce {view: augmented, view_seed} scores.
rule teacher_view_std:
    input:
        data=dataset_files,
        teacher=read_model("teacher_view_std"),
    output:
        class_std=f"{SHARED_RESULTS}/{TEACHER_VIEW_STD}.parquet",
    log:
        f"{SHARED_LOGS}/{TEACHER_VIEW_STD}.log",
    benchmark:
        f"{SHARED_BENCHMARKS}/{TEACHER_VIEW_STD}.tsv"
    conda:
        "../../environment.yml"
    threads: config["scoring"]["threads"]
    resources:
        gpu=GPU,
        mem_mb=HOST_MEM_MB,
        runtime=runtime("teacher_view_std"),
    params:
        spec=shared_spec("teacher_view_std"),
    shell:
        "python -m pipeline.stages.teacher_view_std --spec {params.spec:q} --threads {threads} "
        "--teacher {input.teacher:q} --output {output.class_std:q} > {log:q} 2>&1"
