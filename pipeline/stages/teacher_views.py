"""Stage 1c: a teacher's outputs on K fixed augmented views of every training sample, computed once
and read by every student that distils from it with ``cached_views: K`` (every keep fraction,
scorer and seed), instead of running the teacher at every step.

View v of sample i is a crop offset and a flip drawn once (``views``, seeded by the teacher's name);
a student trained with cached outputs sees, in epoch e, view e mod K of each sample, and the teacher's
logits on exactly that view, so its targets are what the online teacher would give on those
images. The difference from online KD is the augmentation: K views per sample instead of a new
random one at every presentation. Logits are stored in float16 (K x N x classes).
"""
from __future__ import annotations

from pipeline.checkpoints import TEACHER_KEY, load_model
from pipeline.cli import data_meta, parser, setup, stage
from pipeline.teacher_outputs import compute_cached_views, save_cached_views


@stage
def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--teacher", required=True, help="the teacher's checkpoint")
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    spec, data, device = setup(args)
    teacher, teacher_spec = load_model(args.teacher, data.fingerprint, teacher=True)
    views = compute_cached_views(teacher, data, spec["views"], spec["teacher"], spec["batch_size"], device)
    meta = {"stage": "teacher_views", "teacher": spec["teacher"], "views": spec["views"], "spec": spec,
            TEACHER_KEY: teacher_spec.get("config_hash"), **data_meta(data)}
    save_cached_views(args.output, views, meta)
    print(f"{spec['views']} views of {views.cached_logits.shape[1]} samples")


if __name__ == "__main__":
    main()
