"""The tools around the study core: data and downloads, atomic file writes, checkpoints and run
directories, the training loop, plots, evaluation and metrics, the scoring classifier, the
command lines (the examples' helpers, the gradient-check command). See docs/design.md.

They import the core (``tinygan.backend``, ``layers``, ``network``, ``losses``, ``optim``,
``gan``, ``gradcheck``); the core never imports them.
"""
