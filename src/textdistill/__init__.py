"""textdistill: distil BERT-family text classifiers into tiny, fast students."""

__version__ = "0.1.0"
