# The proxy models EL2N and GraNd share: trained once, read by every scorer that needs them.
rule proxies:
    input:
        data=dataset_files,
    output:
        model=f"{SHARED_RESULTS}/{PROXY}/model.pt",
        epochs=f"{SHARED_RESULTS}/{PROXY}/epochs.parquet",
        epoch_models=expand(
            PROXY_EPOCH_MODEL, epoch=PROXY_SCORE_EPOCHS, allow_missing=True
        ),
    log:
        f"{SHARED_LOGS}/{PROXY}.log",
    benchmark:
        f"{SHARED_BENCHMARKS}/{PROXY}.tsv"
    conda:
        "../../environment.yml"
    threads: config["proxies"]["threads"]
    resources:
        gpu=GPU,
        mem_mb=HOST_MEM_MB,
        runtime=runtime("proxies"),
        checkpoint_every=CHECKPOINT_EVERY,
    params:
        spec=shared_spec("proxies"),
        resume=resume_folder,
    shell:
        "python -m pipeline.stages.teachers --spec {params.spec:q} --threads {threads} "
        "--model-out {output.model:q} --epochs-out {output.epochs:q} "
        "--epoch-models-out {output.epoch_models:q} "
        "--resume {params.resume:q} --checkpoint-every {resources.checkpoint_every} > {log:q} 2>&1"


# One job per scorer, given only what the scorer needs. The scorer's own source file is an input,
# so editing it reruns that scorer's jobs and everything downstream of them, and nothing else.
rule scores:
    input:
        unpack(score_inputs),
    output:
        scores=f"{SHARED_RESULTS}/{SCORES}.parquet",
    log:
        f"{SHARED_LOGS}/{SCORES}.log",
    benchmark:
        f"{SHARED_BENCHMARKS}/{SCORES}.tsv"
    conda:
        "../../environment.yml"
    threads: config["scoring"]["threads"]
    resources:
        gpu=scores_gpu,
        mem_mb=HOST_MEM_MB,
        runtime=runtime("scores"),
    params:
        spec=shared_spec("scores"),
        inputs=score_arguments,
    shell:
        "python -m pipeline.stages.scores --spec {params.spec:q} --threads {threads} {params.inputs} "
        "--output {output.scores:q} > {log:q} 2>&1"


# How the scorers relate: rank correlations between every pair and per-class statistics, and
# their plots (here rather than in the aggregate: a scorer no selector uses reruns no student plot).
rule scores_summary:
    input:
        scores=all_scores,
    output:
        summary=f"{RESULTS}/scores_summary.parquet",
        correlation_plot=report(
            f"{PLOTS}/scorer_rank_correlation.png",
            caption="../report/rank_correlation.rst",
            category="Scores",
        ),
        histograms=report(
            f"{PLOTS}/score_histograms.png",
            caption="../report/score_histograms.rst",
            category="Scores",
        ),
    log:
        f"{LOGS}/{SCORES_SUMMARY}.log",
    benchmark:
        f"{BENCHMARKS}/{SCORES_SUMMARY}.tsv"
    conda:
        "../../environment.yml"
    resources:
        **CPU_JOB,
    params:
        spec=scores_summary_spec(),
    shell:
        "python -m pipeline.stages.scores_summary --spec {params.spec:q} --scores {input.scores:q} "
        "--output {output.summary:q} --correlation-plot-out {output.correlation_plot:q} "
        "--histograms-out {output.histograms:q} > {log:q} 2>&1"
