rule aggregate:
    input:
        student_runs(),
    output:
        summary=f"{RESULTS}/summary.parquet",
        plot=f"{RESULTS}/accuracy_vs_keep_fraction.png",
    log:
        f"{LOGS}/aggregate.log",
    benchmark:
        f"{BENCHMARKS}/aggregate.tsv"
    conda:
        "../../environment.yml"
    shell:
        "python -m pipeline.aggregate --runs {input:q} --summary-out {output.summary:q} "
        "--plot-out {output.plot:q} > {log:q} 2>&1"
