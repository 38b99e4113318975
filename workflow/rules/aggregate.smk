# The summary of every student, and the study's table and plot.
rule aggregate:
    input:
        student_runs(),
    output:
        summary=f"{RESULTS}/summary.parquet",
        plot=f"{RESULTS}/accuracy_vs_keep_fraction.png",
        study_table=STUDY_FILES["parquet"],
        study_markdown=STUDY_FILES["md"],
        study_plot=STUDY_FILES["png"],
    params:
        report=as_json(config["report"]),
    resources:
        **CPU_JOB,
    log:
        f"{LOGS}/aggregate.log",
    benchmark:
        f"{BENCHMARKS}/aggregate.tsv"
    conda:
        "../../environment.yml"
    shell:
        "python -m pipeline.aggregate --runs {input:q} --report {params.report:q} "
        "--summary-out {output.summary:q} --plot-out {output.plot:q} --study-table-out {output.study_table:q} "
        "--study-markdown-out {output.study_markdown:q} --study-plot-out {output.study_plot:q} > {log:q} 2>&1"
