"""A distillation setting: how a student is trained on its subset (config ``distillation.<name>``).

One typed record, parsed and checked once from its config entry, instead of a dict read key by
key wherever it is used. Its dict forms (``spec``, ``loss_params``) are exactly what the validated
config holds and the students' job specs are built from, so a job's spec does not change with the
record.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pipeline.errors import UserError
from pipeline.infobatch import InfoBatchConfig
from pipeline.losses import LOSSES, DistillLoss
from pipeline.params import params_dict, parse_params

# The keys of a setting that are not its loss's parameters ("name": in a student's job spec).
SETTING_KEYS = ("name", "loss", "teacher", "infobatch", "shape_student", "cached_views", "reshape_view_seed")


@dataclass(frozen=True)
class DistillSetting:
    name: str  # the setting's name under ``distillation`` (a folder of the students' outputs)
    loss: str  # loss registry name
    params: Any  # the loss's Params, every parameter filled in
    teacher: str | None = None  # the teacher or pruned teacher distilled from; None for a loss without one
    infobatch: InfoBatchConfig | None = None  # InfoBatch dynamic pruning during training, or None
    shape_student: bool = False  # train the student formed from the (pruned) teacher instead of student.model
    cached_views: int | None = None  # K: read the teacher's logits on K cached augmented views; None: online
    # the class statistics for logit reshaping from one seeded augmented pass of the teacher (MDSLR's
    # std.npy; rule teacher_view_std), the pass teacher-output scorers score with view_seed; None: from
    # the un-augmented images (teachers/<t>/class_logit_std.parquet)
    reshape_view_seed: int | None = None

    @classmethod
    def parse(cls, name: str, entry: Mapping[str, Any], where: str | None = None,
              config: Mapping[str, Any] | None = None) -> DistillSetting:
        """The setting of a config entry (or of a student's job spec, which adds ``name``), checked:
        the loss and its parameters, a teacher exactly when the loss reads one, shape_student only
        with a teacher, cached_views only for a loss that reads nothing of the teacher but its
        logits, and InfoBatch's parameters. With ``config`` (the config being validated, sections
        ``teachers``, ``pruned_teachers`` and ``student`` already checked) also what depends on the
        rest of it: the teacher is defined, cached views go with student augmentation, the family
        of a shaped student and the loss's layer names against the models. Every problem is one
        line naming the key (``where``, default ``distillation.<name>``)."""
        where = where or f"distillation.{name}"
        loss_values = {k: v for k, v in entry.items() if k not in SETTING_KEYS}
        setting = cls(
            name=name,
            loss=entry["loss"],
            params=LOSSES.params(entry["loss"], loss_values, where),
            teacher=entry.get("teacher"),
            shape_student=entry.get("shape_student", False),
            cached_views=entry.get("cached_views"),
            reshape_view_seed=entry.get("reshape_view_seed"),
        )
        loss = setting.build_loss()
        setting._check_teacher(loss, where, config)
        if config is not None:
            setting._check_models(config, loss, where)
        if "infobatch" in entry:
            infobatch = parse_params(InfoBatchConfig, entry["infobatch"], f"{where}.infobatch")
            setting = replace(setting, infobatch=infobatch)
        return setting

    def build_loss(self) -> DistillLoss:
        return LOSSES.get(self.loss)(self.params)

    def loss_params(self) -> dict[str, Any]:
        """The loss's parameters, every one, as the config and the job spec hold them."""
        return params_dict(self.params)

    def spec(self) -> dict[str, Any]:
        """The setting as the validated config holds it under ``distillation.<name>`` (the
        students' job specs add ``name``): the loss's parameters beside the setting's own keys;
        ``teacher``, ``infobatch`` and ``reshape_view_seed`` only when set."""
        return {
            "loss": self.loss,
            **({"teacher": self.teacher} if self.teacher is not None else {}),
            "shape_student": self.shape_student,
            "cached_views": self.cached_views,
            **({"infobatch": params_dict(self.infobatch)} if self.infobatch is not None else {}),
            **({"reshape_view_seed": self.reshape_view_seed} if self.reshape_view_seed is not None else {}),
            **self.loss_params(),
        }

    def _check_teacher(self, loss: DistillLoss, where: str, config: Mapping[str, Any] | None) -> None:
        """A teacher exactly when the loss reads one, and cached views only where they can serve the
        loss (the rule is the source's own: ``pipeline.teacher_outputs.CachedViews.problem``)."""
        from pipeline.teacher_outputs import CachedViews

        if loss.needs_teacher:
            teachers = None if config is None else [*config["teachers"], *config["pruned_teachers"]]
            if self.teacher is None or (teachers is not None and self.teacher not in teachers):
                defined = "" if teachers is None else f"; defined: {', '.join(teachers)}"
                raise UserError(f"config error in {where}.teacher: teacher {self.teacher!r} is not defined{defined}")
        elif self.teacher is not None:
            raise UserError(f"config error in {where}: loss {self.loss!r} uses no teacher; remove 'teacher'")
        if self.reshape_view_seed is not None and not loss.needs_teacher_class_std:
            raise UserError(f"config error in {where}.reshape_view_seed: loss {self.loss!r} does not reshape the "
                            f"teacher's logits; remove it or set reshape: true")
        if self.shape_student and self.teacher is None:
            raise UserError(f"config error in {where}: shape_student needs a teacher to shape the student from")
        if self.cached_views:
            augment = True if config is None else config["student"]["train"].get("augment", True)
            problem = CachedViews.problem(loss, augment)
            if problem is not None:
                raise UserError(f"config error in {where}.cached_views: cached teacher views cannot serve loss "
                                f"{self.loss!r}: {problem}")

    def _check_models(self, config: Mapping[str, Any], loss: DistillLoss, where: str) -> None:
        """Layer names of feature losses, and the family of shaped students, against the models."""
        from pipeline.features import check_layers
        from pipeline.models import build_model
        from pipeline.models.shaping import SHAPED_FAMILIES

        teacher = base_teacher(config, self.teacher) if self.teacher is not None else None
        if self.shape_student and teacher["model"] not in SHAPED_FAMILIES:
            raise UserError(f"config error in {where}.shape_student: cannot shape a student from {teacher['model']!r}; "
                            f"supported: {', '.join(sorted(SHAPED_FAMILIES))}")
        student = teacher if self.shape_student else config["student"]
        for section, layers, side in ((student, loss.student_layers, "student_layers"),
                                      (teacher, loss.teacher_layers, "teacher_layers")):
            if layers:  # the layer names do not depend on the number of classes or channels
                model = build_model(section["model"], 10, 3, **section["model_args"])
                check_layers(model, layers, f"config error in {where}.{side}")


def base_teacher(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The ``teachers`` entry a (pruned) teacher comes from: its architecture."""
    while name in config["pruned_teachers"]:
        name = config["pruned_teachers"][name]["teacher"]
    return config["teachers"][name]
