"""Workflows that touch several models, one module per area, as typed keyword-only functions.

- imports:  items_import, labels_import, project_ensure
- queue:    the annotators' queue (assignments, submit, skip)
- judging:  AI judge runs (start, progress, cancel)
- routing:  routing runs (preview, apply)
- labels / exports: final labels, agreement, datasets out
"""
