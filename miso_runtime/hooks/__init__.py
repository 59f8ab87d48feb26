"""Hooks: rules that run a command when the live EEG comes near the EEG of labelled moments.

- :mod:`.rules`: the rule as the daemon's frontend edits it, and what makes one unable to fire;
- :mod:`.matcher`: keywords -> nearest labels by meaning -> their EEG vectors, and the check of
  each live epoch embedding against them (in the ``embed`` worker, beside the vectors);
- :mod:`.commands`: a fired hook's command, run off the embedding path with a timeout;
- :mod:`.service`: the routes' logic on the server (rules file, log, suggestions).
"""
