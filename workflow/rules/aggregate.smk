# The summary of every student, their per-epoch metrics, their plots and the study's table and
# plot: what the user reads (report(...) puts each figure and table into `snakemake --report`).
rule aggregate:
    input:
        runs=student_outputs("run"),
        epochs=student_outputs("epochs"),
        per_class=student_outputs("per_class"),
        benchmarks=all_benchmarks,
    output:
        summary=f"{RESULTS}/summary.parquet",
        epochs=f"{RESULTS}/epochs.parquet",
        per_class=f"{RESULTS}/per_class.parquet",
        costs=f"{RESULTS}/costs.parquet",
        gain_plot=report(
            f"{PLOTS}/gain_over_random.png",
            caption="../report/gain_over_random.rst",
            category="Students",
        ),
        cost_plot=report(
            f"{PLOTS}/accuracy_vs_cost.png",
            caption="../report/accuracy_vs_cost.rst",
            category="Students",
        ),
        accuracy_plot=report(
            f"{PLOTS}/accuracy_vs_keep_fraction.png",
            caption="../report/accuracy.rst",
            category="Students",
        ),
        kd_gain_plot=report(
            f"{PLOTS}/kd_gain.png",
            caption="../report/kd_gain.rst",
            category="Students",
        ),
        study_table=f"{RESULTS}/study.parquet",
        study_markdown=f"{RESULTS}/study.md",
        study_html=report(
            f"{RESULTS}/study.html",
            caption="../report/study_table.rst",
            category="Study",
        ),
        study_plot=report(
            f"{RESULTS}/study.png",
            caption="../report/study_plot.rst",
            category="Study",
        ),
    log:
        f"{LOGS}/aggregate.log",
    benchmark:
        f"{BENCHMARKS}/aggregate.tsv"
    conda:
        "../../environment.yml"
    resources:
        **CPU_JOB,
    params:
        spec=aggregate_spec(),
    shell:
        "python -m pipeline.stages.aggregate --spec {params.spec:q} --runs {input.runs:q} --epochs {input.epochs:q} "
        "--per-class {input.per_class:q} --benchmarks {input.benchmarks:q} "
        "--summary-out {output.summary:q} --epochs-out {output.epochs:q} --per-class-out {output.per_class:q} "
        "--costs-out {output.costs:q} --gain-plot-out {output.gain_plot:q} --cost-plot-out {output.cost_plot:q} "
        "--accuracy-plot-out {output.accuracy_plot:q} --kd-gain-plot-out {output.kd_gain_plot:q} "
        "--study-table-out {output.study_table:q} --study-markdown-out {output.study_markdown:q} "
        "--study-html-out {output.study_html:q} --study-plot-out {output.study_plot:q} > {log:q} 2>&1"
