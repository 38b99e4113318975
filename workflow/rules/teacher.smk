rule teacher:
    output:
        model=f"{RESULTS}/teachers/{{teacher}}/model.pt",
        epochs=f"{RESULTS}/teachers/{{teacher}}/epochs.parquet",
        dynamics=f"{RESULTS}/teachers/{{teacher}}/dynamics.parquet",
        logits=f"{RESULTS}/teachers/{{teacher}}/train_logits.pt",
    params:
        spec=teacher_spec,
    threads: lambda wildcards: config["teachers"][wildcards.teacher]["threads"]
    log:
        f"{LOGS}/teachers/{{teacher}}.log",
    benchmark:
        f"{BENCHMARKS}/teachers/{{teacher}}.tsv"
    conda:
        "../../environment.yml"
    shell:
        "python -m pipeline.teacher --spec {params.spec:q} --threads {threads} "
        "--model-out {output.model:q} --epochs-out {output.epochs:q} --dynamics-out {output.dynamics:q} "
        "--logits-out {output.logits:q} > {log:q} 2>&1"
