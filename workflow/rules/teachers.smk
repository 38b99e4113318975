# Every teacher, trained once on the full training set. Training jobs save their state in a
# resume/ folder beside their model (params.resume) and continue from it when started again.
rule teachers:
    output:
        model=f"{RESULTS}/{TEACHER}/model.pt",
        epochs=f"{RESULTS}/{TEACHER}/epochs.parquet",
        dynamics=f"{RESULTS}/{TEACHER}/dynamics.parquet",
        logits=f"{RESULTS}/{TEACHER}/train_logits.pt",
        class_std=f"{RESULTS}/{TEACHER}/class_logit_std.parquet",
    log:
        f"{LOGS}/{TEACHER}.log",
    benchmark:
        f"{BENCHMARKS}/{TEACHER}.tsv"
    conda:
        "../../environment.yml"
    threads: teacher_threads
    resources:
        gpu=teacher_gpus,
        mem_mb=HOST_MEM_MB,
        runtime=runtime("teachers"),
        checkpoint_every=CHECKPOINT_EVERY,
    params:
        spec=teacher_spec,
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
        teacher=pruned_teacher_parent,
    output:
        model=f"{RESULTS}/{PRUNED_TEACHER}/model.pt",
        epochs=f"{RESULTS}/{PRUNED_TEACHER}/epochs.parquet",
        rounds=f"{RESULTS}/{PRUNED_TEACHER}/rounds.parquet",
        logits=f"{RESULTS}/{PRUNED_TEACHER}/train_logits.pt",
        class_std=f"{RESULTS}/{PRUNED_TEACHER}/class_logit_std.parquet",
    log:
        f"{LOGS}/{PRUNED_TEACHER}.log",
    benchmark:
        f"{BENCHMARKS}/{PRUNED_TEACHER}.tsv"
    conda:
        "../../environment.yml"
    threads: pruned_teacher_threads
    resources:
        gpu=GPU,
        mem_mb=HOST_MEM_MB,
        runtime=runtime("pruned_teachers"),
        checkpoint_every=CHECKPOINT_EVERY,
    params:
        spec=pruned_teacher_spec,
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
        teacher=viewed_teacher,
    output:
        views=f"{RESULTS}/teachers/{{viewed}}/views{{views}}.pt",
    log:
        f"{LOGS}/{TEACHER_VIEWS}.log",
    benchmark:
        f"{BENCHMARKS}/{TEACHER_VIEWS}.tsv"
    conda:
        "../../environment.yml"
    threads: config["scoring"]["threads"]
    resources:
        gpu=GPU,
        mem_mb=HOST_MEM_MB,
        runtime=runtime("teacher_views"),
    params:
        spec=teacher_views_spec,
    shell:
        "python -m pipeline.stages.teacher_views --spec {params.spec:q} --threads {threads} "
        "--teacher {input.teacher:q} --output {output.views:q} > {log:q} 2>&1"


# MDSLR's class statistics for reshaping from one seeded augmented pass of the teacher (settings
# with reshape_view_seed): the pass teacher_ce {view: augmented, view_seed} scores.
rule teacher_view_std:
    input:
        teacher=viewed_teacher,
    output:
        class_std=f"{RESULTS}/teachers/{{viewed}}/class_logit_std_view{{view_seed}}.parquet",
    log:
        f"{LOGS}/{TEACHER_VIEW_STD}.log",
    benchmark:
        f"{BENCHMARKS}/{TEACHER_VIEW_STD}.tsv"
    conda:
        "../../environment.yml"
    threads: config["scoring"]["threads"]
    resources:
        gpu=GPU,
        mem_mb=HOST_MEM_MB,
        runtime=runtime("teacher_view_std"),
    params:
        spec=teacher_view_std_spec,
    shell:
        "python -m pipeline.stages.teacher_view_std --spec {params.spec:q} --threads {threads} "
        "--teacher {input.teacher:q} --output {output.class_std:q} > {log:q} 2>&1"
