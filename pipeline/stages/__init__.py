"""The workflow's stages: each module is one rule's command (``python -m pipeline.stages.<rule>``),
named like its rule and its output folder; everything else in ``pipeline`` is the library they share."""
