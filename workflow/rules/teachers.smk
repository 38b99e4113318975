rule teachers:
    output:
        model=f"{RESULTS}/teachers/{{teacher}}/model.pt",
        epochs=f"{RESULTS}/teachers/{{teacher}}/epochs.parquet",
        dynamics=f"{RESULTS}/teachers/{{teacher}}/dynamics.parquet",
        logits=f"{RESULTS}/teachers/{{teacher}}/train_logits.pt",
        class_std=f"{RESULTS}/teachers/{{teacher}}/class_logit_std.parquet",
    params:
        spec=teacher_spec,
        python=teacher_launcher,
    threads: lambda wildcards: config["teachers"][wildcards.teacher]["threads"]
    resources:
        gpu=lambda wildcards: GPU * config["teachers"][wildcards.teacher]["gpus"],
        mem_mb=HOST_MEM_MB,
        runtime=teacher_runtime,
    log:
        f"{LOGS}/teachers/{{teacher}}.log",
    benchmark:
        f"{BENCHMARKS}/teachers/{{teacher}}.tsv"
    conda:
        "../../environment.yml"
    shell:
        "{params.python} -m pipeline.stages.teachers --spec {params.spec:q} --threads {threads} "
        "--model-out {output.model:q} --epochs-out {output.epochs:q} --dynamics-out {output.dynamics:q} "
        "--logits-out {output.logits:q} --class-std-out {output.class_std:q} "
        "--resume {RESULTS}/teachers/{wildcards.teacher}/resume --checkpoint-every {CHECKPOINT_EVERY} > {log:q} 2>&1"


# Prune, then distill: a pruned teacher lives beside the teachers and is named like one.
rule pruned_teachers:
    input:
        teacher=pruned_teacher_parent,
    output:
        model=f"{RESULTS}/teachers/{{pruned}}/model.pt",
        epochs=f"{RESULTS}/teachers/{{pruned}}/epochs.parquet",
        rounds=f"{RESULTS}/teachers/{{pruned}}/rounds.parquet",
        logits=f"{RESULTS}/teachers/{{pruned}}/train_logits.pt",
        class_std=f"{RESULTS}/teachers/{{pruned}}/class_logit_std.parquet",
    params:
        spec=pruned_teacher_spec,
    threads: lambda wildcards: config["pruned_teachers"][wildcards.pruned]["threads"]
    resources:
        gpu=GPU,
        mem_mb=HOST_MEM_MB,
        runtime=pruned_teacher_runtime,
    log:
        f"{LOGS}/teachers/{{pruned}}.log",
    benchmark:
        f"{BENCHMARKS}/teachers/{{pruned}}.tsv"
    conda:
        "../../environment.yml"
    shell:
        "python -m pipeline.stages.pruned_teachers --spec {params.spec:q} --threads {threads} --teacher {input.teacher:q} "
        "--model-out {output.model:q} --epochs-out {output.epochs:q} --rounds-out {output.rounds:q} "
        "--logits-out {output.logits:q} --class-std-out {output.class_std:q} "
        "--resume {RESULTS}/teachers/{wildcards.pruned}/resume --checkpoint-every {CHECKPOINT_EVERY} > {log:q} 2>&1"


# Cached teacher outputs (distillation settings with cached_views: K): the teacher's logits on K
# fixed augmented views of every training sample, computed once and read by all its students.
rule teacher_views:
    input:
        teacher=f"{RESULTS}/teachers/{{viewed}}/model.pt",
    output:
        f"{RESULTS}/teachers/{{viewed}}/views{{views}}.pt",
    params:
        spec=teacher_views_spec,
    threads: config["scoring"]["threads"]
    resources:
        gpu=GPU,
        mem_mb=HOST_MEM_MB,
        runtime=teacher_views_runtime,
    log:
        f"{LOGS}/teachers/{{viewed}}_views{{views}}.log",
    benchmark:
        f"{BENCHMARKS}/teachers/{{viewed}}_views{{views}}.tsv"
    conda:
        "../../environment.yml"
    shell:
        "python -m pipeline.stages.teacher_views --spec {params.spec:q} --threads {threads} "
        "--teacher {input.teacher:q} --output {output:q} > {log:q} 2>&1"
