"""The students a run trains (the main one plus ``students[]``), fully validated before any stage runs.

Kept apart from ``pipeline`` so that ``textdistill config show`` validates a config without importing the stages.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from textdistill.config import Config, ConfigError, DistillConfig, StudentConfig, from_dict
from textdistill.students import build_arch


@dataclass
class StudentPlan:
    """One student to train in a run: a tag (directory name), its student section and its distill section."""

    tag: str
    student: StudentConfig
    distill: DistillConfig

    @property
    def uses_teacher(self) -> bool:
        d = self.distill
        return d.soft_weight + d.sequence_weight + d.mse_weight > 0

    @property
    def uses_representations(self) -> bool:
        """Trained to match the teacher's representations too (``distill.representation_weight``)."""
        return self.uses_teacher and self.distill.representation_weight > 0


def student_plans(config: Config) -> list[StudentPlan]:
    """The main student plus every entry of ``students`` (each overrides the student and distill sections)."""
    plans = [StudentPlan(config.student.name, config.student, config.distill)]
    for index, entry in enumerate(config.students):
        unknown = sorted(set(entry) - {"tag", "student", "distill"})
        if unknown or "tag" not in entry:
            raise ConfigError(
                f"students[{index}]: keys must be tag, student, distill (tag required); got {sorted(entry)}"
            )
        sections = {name: entry.get(name) or {} for name in ("student", "distill")}
        for name, value in sections.items():
            if not isinstance(value, dict):
                raise ConfigError(f"students[{index}].{name}: expected a mapping of {name} keys, got {value!r}")
        prefix = f"students[{index}]."
        student = from_dict(StudentConfig, {**asdict(config.student), **sections["student"]}, prefix + "student.")
        distill = from_dict(DistillConfig, {**asdict(config.distill), **sections["distill"]}, prefix + "distill.")
        plans.append(StudentPlan(str(entry["tag"]), student, distill))
    tags = [plan.tag for plan in plans]
    if len(set(tags)) != len(tags):
        raise ConfigError(f"student tags must be unique, got {tags}")
    for plan in plans:
        _check_arch(config, plan)
    return plans


def _check_arch(config: Config, plan: StudentPlan) -> None:
    """Validate a plan's student name and arch keys now, not after the data, teacher and logit stages."""
    uses_word2vec = plan.student.use_word2vec and config.embeddings.enabled
    try:
        build_arch(plan.student.name, plan.student.arch, config.embeddings.vector_size if uses_word2vec else None)
    except ValueError as error:
        raise ConfigError(f"student {plan.tag!r}: {error}") from None


def validate_config(config: Config) -> None:
    """Checks that need the student registry (``load_config`` checks everything else): run before any stage."""
    student_plans(config)
