"""Students: one file per student, each registering its module class under a name (see ``registry``).

``registry`` holds the contract (``StudentModule``), the registry and the helpers; importing this package
imports every student module so that each registers itself.
"""

from textdistill.students import (  # noqa: F401  (they register)
    cnn,
    ngram_bag,
    pretrained_layers,
    rnn_attention,
    transformer,
)
from textdistill.students.registry import (
    PrunedEmbedding,
    StudentModule,
    arch_reference_markdown,
    build_arch,
    build_student,
    count_parameters,
    init_embeddings,
    kept_count,
    pretrained_source,
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
    "arch_reference_markdown",
    "build_arch",
    "build_student",
    "count_parameters",
    "init_embeddings",
    "kept_count",
    "pretrained_source",
    "refresh_rnn_weights",
    "register",
    "student_class",
    "student_names",
    "top_indices",
    "valid_positions",
]
