"""Teachers: the models whose logits the students learn from, one kind per module.

- ``transformer``: a pretrained encoder (e.g. MiniLM) fine-tuned with the Hugging Face Trainer; its logits are
  computed once and cached. Saved with ``save_pretrained`` (safetensors + tokenizer + model card).
- ``ngram``: an NB-weighted logistic regression over binary word 1–3-grams (Wang & Manning 2012, NBSVM-style),
  fitted in minutes on one CPU core; C is chosen on the validation split and ``out_of_fold_logits`` gives
  honest (cross-fitted) logits for the training rows. Saved as JSON + safetensors, no pickle.

Every teacher yields logits of shape (n, num_labels), float32, in input order. The modules are imported on
demand (``from textdistill.teachers.ngram import NgramTeacher``) so that using one does not load the other's
dependencies (torch/transformers for ``transformer``).
"""
