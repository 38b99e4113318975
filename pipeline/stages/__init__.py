"""The workflow's stages: each module is one rule's command (``python -m pipeline.stages.<rule>``),
named like its rule and its output folder; everything else in ``pipeline`` is the library they share."""
from pipeline.warm import run_warm_if_served

# A stage started with python -m in a local run: run it in a child of the run's warm server (and
# exit with its status) rather than importing torch again; elsewhere this returns at once.
run_warm_if_served()
