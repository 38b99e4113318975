# What the selectors keep: a gallery per selector of the hardest, medium and easiest kept and
# pruned samples at the middle keep fraction (from the scores and subsets only, not the students).
rule galleries:
    input:
        data=dataset_files,
        scores=gallery_scores,
        subsets=gallery_subsets,
    output:
        report(
            expand(
                f"{PLOTS}/gallery/{{selector}}.png",
                selector=config["selection"]["selectors"],
            ),
            caption="../report/gallery.rst",
            category="Subsets",
        ),
    log:
        f"{LOGS}/galleries.log",
    benchmark:
        f"{BENCHMARKS}/galleries.tsv"
    conda:
        "../../environment.yml"
    resources:
        **CPU_JOB,
    params:
        spec=galleries_spec(),
        folder=gallery_folder,
    shell:
        "python -m pipeline.stages.galleries --spec {params.spec:q} --scores {input.scores:q} "
        "--subsets {input.subsets:q} --folder {params.folder:q} > {log:q} 2>&1"
