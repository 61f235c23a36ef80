"""The tools around the study core: data and downloads, checkpoints and run directories, the
training loop, plots, evaluation and metrics, the scoring classifier, the command lines.

They import the core (``tinygan.backend``, ``layers``, ``network``, ``losses``, ``optim``,
``gan``, ``gradcheck``); the core never imports them.
"""
