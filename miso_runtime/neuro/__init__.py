"""EEG: boards, signal processing, capture sessions, history and analysis.

Nothing is imported here on purpose: the DSP modules (:mod:`.filters`, :mod:`.bands`,
:mod:`.quality`, :mod:`.epochs`, :mod:`.pipeline`) pull in scipy, which the server process
does not need at start; import what you use from its module. All tunable constants: the
table at the top of :mod:`.bands`.
"""
