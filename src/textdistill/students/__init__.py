"""Students: one file per student, each registering its module class under a name (see ``registry``).

``registry`` holds the contract (``StudentModule``), the registry and the helpers; importing this package
imports every student module so that each registers itself.
"""

from textdistill.students import cnn, ngram_bag, rnn_attention, transformer  # noqa: F401  (they register)
from textdistill.students.registry import (
    PrunedEmbedding,
    StudentModule,
    build_arch,
    build_student,
    count_parameters,
    init_embeddings,
    kept_count,
    refresh_rnn_weights,
    register,
    student_class,
    student_names,
    top_indices,
    valid_positions,
)

__all__ = [
    "PrunedEmbedding",
    "StudentModule",
    "build_arch",
    "build_student",
    "count_parameters",
    "init_embeddings",
    "kept_count",
    "refresh_rnn_weights",
    "register",
    "student_class",
    "student_names",
    "top_indices",
    "valid_positions",
]
