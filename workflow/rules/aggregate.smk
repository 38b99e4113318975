# The summary of every student, their per-epoch metrics, the plots the user reads and the study's
# table and plot; report(...) puts each figure and table into `snakemake --report`.
rule aggregate:
    input:
        runs=student_files("run.parquet"),
        epochs=student_files("epochs.parquet"),
        scores=SELECTED_SCORES,
        subsets=GALLERY_SUBSETS,
    output:
        summary=AGGREGATE_FILES["summary"],
        epochs=AGGREGATE_FILES["epochs"],
        accuracy_plot=report(AGGREGATE_FILES["accuracy_plot"], caption="../report/accuracy.rst", category="Students"),
        kd_gain_plot=report(AGGREGATE_FILES["kd_gain_plot"], caption="../report/kd_gain.rst", category="Students"),
        galleries=report(AGGREGATE_FILES["galleries"], caption="../report/gallery.rst", category="Subsets"),
        study_table=STUDY_FILES["parquet"],
        study_markdown=STUDY_FILES["md"],
        study_html=report(STUDY_FILES["html"], caption="../report/study_table.rst", category="Study"),
        study_plot=report(STUDY_FILES["png"], caption="../report/study_plot.rst", category="Study"),
    params:
        spec=aggregate_spec(),
        gallery_folder=lambda wildcards, output: str(Path(output.galleries[0]).parent),
    resources:
        **CPU_JOB,
    log:
        f"{LOGS}/aggregate.log",
    benchmark:
        f"{BENCHMARKS}/aggregate.tsv"
    conda:
        "../../environment.yml"
    shell:
        "python -m pipeline.stages.aggregate --spec {params.spec:q} --runs {input.runs:q} --epochs {input.epochs:q} "
        "--scores {input.scores:q} --subsets {input.subsets:q} --summary-out {output.summary:q} "
        "--epochs-out {output.epochs:q} --accuracy-plot-out {output.accuracy_plot:q} "
        "--kd-gain-plot-out {output.kd_gain_plot:q} --gallery-folder {params.gallery_folder:q} "
        "--study-table-out {output.study_table:q} --study-markdown-out {output.study_markdown:q} "
        "--study-html-out {output.study_html:q} --study-plot-out {output.study_plot:q} > {log:q} 2>&1"
