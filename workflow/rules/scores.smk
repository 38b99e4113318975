# The proxy models EL2N and GraNd share: trained once, read by every scorer that needs them.
rule proxies:
    output:
        model=f"{RESULTS}/proxies/run{{run}}/model.pt",
        epochs=f"{RESULTS}/proxies/run{{run}}/epochs.parquet",
    params:
        spec=proxy_spec,
    threads: config["proxies"]["threads"]
    resources:
        gpu=GPU,
        mem_mb=HOST_MEM_MB,
        runtime=proxy_runtime,
    log:
        f"{LOGS}/proxies/run{{run}}.log",
    benchmark:
        f"{BENCHMARKS}/proxies/run{{run}}.tsv"
    conda:
        "../../environment.yml"
    shell:
        "python -m pipeline.stages.teachers --spec {params.spec:q} --threads {threads} "
        "--model-out {output.model:q} --epochs-out {output.epochs:q} "
        "--resume {RESULTS}/proxies/run{wildcards.run}/resume --checkpoint-every {CHECKPOINT_EVERY} > {log:q} 2>&1"


# One job per scorer, given only what the scorer needs. The scorer's own source file is an input,
# so editing it reruns that scorer's jobs and everything downstream of them, and nothing else.
rule scores:
    input:
        unpack(score_inputs),
    output:
        f"{RESULTS}/scores/{{scorer}}.parquet",
    params:
        spec=score_spec,
        inputs=score_arguments,
    threads: config["scoring"]["threads"]
    resources:
        gpu=GPU,
        mem_mb=HOST_MEM_MB,
        runtime=scoring_runtime,
    log:
        f"{LOGS}/scores/{{scorer}}.log",
    benchmark:
        f"{BENCHMARKS}/scores/{{scorer}}.tsv"
    conda:
        "../../environment.yml"
    shell:
        "python -m pipeline.stages.scores --spec {params.spec:q} --threads {threads} {params.inputs} "
        "--output {output:q} > {log:q} 2>&1"


# How the scorers relate: rank correlations between every pair and per-class statistics, and
# their plots (here rather than in the aggregate: a scorer no selector uses reruns no student plot).
rule scores_summary:
    input:
        expand(f"{RESULTS}/scores/{{scorer}}.parquet", scorer=config["scorers"]),
    output:
        summary=SCORES_SUMMARY_FILES["summary"],
        correlation_plot=report(SCORES_SUMMARY_FILES["correlation_plot"], caption="../report/rank_correlation.rst",
                                category="Scores"),
        histograms=report(SCORES_SUMMARY_FILES["histograms"], caption="../report/score_histograms.rst",
                          category="Scores"),
    params:
        spec=scores_summary_spec(),
    resources:
        **CPU_JOB,
    log:
        f"{LOGS}/scores/summary.log",
    benchmark:
        f"{BENCHMARKS}/scores/summary.tsv"
    conda:
        "../../environment.yml"
    shell:
        "python -m pipeline.stages.scores_summary --spec {params.spec:q} --scores {input:q} --output {output.summary:q} "
        "--correlation-plot-out {output.correlation_plot:q} --histograms-out {output.histograms:q} > {log:q} 2>&1"
