"""textdistill: distil BERT-family text classifiers into tiny, fast students.

    from textdistill import Distiller, Student

``Distiller`` and ``Student`` are imported on first use (PEP 562), so ``textdistill --help`` and
``textdistill config show`` do not pay for importing torch and transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Distiller", "Student", "__version__"]

if TYPE_CHECKING:
    from textdistill.api import Distiller
    from textdistill.students.hub import Student


def __getattr__(name: str) -> Any:
    if name == "Distiller":
        from textdistill.api import Distiller

        return Distiller
    if name == "Student":
        from textdistill.students.hub import Student

        return Student
    raise AttributeError(f"module 'textdistill' has no attribute {name!r}")
