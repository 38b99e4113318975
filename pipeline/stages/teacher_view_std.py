"""Stage 1d: MDSLR's class statistics for logit reshaping from one seeded augmented pass of a teacher.

MDSLR computes the class-wise logit std it reshapes with (its std.npy) from the same single pass of
the training loader, random crop and flip included, that it scores teacher CE on. This stage runs
the teacher (eval mode) on the augmented view of every training sample that ``view_seed`` draws
(``pipeline.teacher_outputs.augmented_view_logits``, the pass ``teacher_ce {view: augmented,
view_seed}`` scores) and writes s[c] of those logits over the samples not held out, for the students
of a setting with ``reshape_view_seed``.
"""
from __future__ import annotations

from pipeline.checkpoints import TEACHER_KEY, load_model
from pipeline.cli import data_meta, parser, setup, stage
from pipeline.stages.teachers import write_class_logit_std
from pipeline.teacher_outputs import augmented_view_logits


@stage
def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--teacher", required=True, help="the teacher's checkpoint")
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    spec, data, device = setup(args)
    teacher, teacher_spec = load_model(args.teacher, data.fingerprint, teacher=True)
    logits = augmented_view_logits(teacher, data, spec["view_seed"], spec["batch_size"], device)
    meta = {"stage": "teacher_view_std", "teacher": spec["teacher"], "view": "augmented",
            "view_seed": spec["view_seed"], "spec": spec, TEACHER_KEY: teacher_spec.get("config_hash"),
            **data_meta(data)}
    write_class_logit_std(args.output, logits, data, meta)


if __name__ == "__main__":
    main()
