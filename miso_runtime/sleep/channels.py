"""Which EEG channel of a recording YASA stages.

YASA's classifiers were trained on one central derivation of full-night polysomnography (C4-M1,
or C4-Fpz in the cohorts recorded that way; Vallat & Walker 2021), and YASA advises a central
electrode referenced to the mastoids or to Fpz.
Consumer headbands have no central electrode, so the choice is the nearest substitute, in this
order of 10-20 positions (the part of a name before ``-`` or ``/``; case does not matter):

1. **Central** ``C4, C3, Cz, C2, C1, C6, C5``: what the classifiers know.
2. **Temporo-parietal** ``TP10, TP9, T8, T7, T4, T3, T6, T5, P4, P3, Pz``: on a Muse headband
   TP9 and TP10 are referenced to Fpz, so each is a long derivation across the scalp, like
   C4-Fpz: it carries the frontal slow waves and spindles of N2 and N3 (through Fpz) and the
   posterior alpha of wake, with amplitudes near those of C4-M1. The right side comes first,
   as C4 does in YASA's training data.
3. **Frontal** ``F4, F3, Fz, F8, F7, FC4, FC3, FCz, AF8, AF7, Fp2, Fp1``: slow waves are largest
   frontally, but AF7/AF8 against Fpz are short derivations with small amplitudes and more eye
   movement, which looks like wake to the classifier.
4. **Occipital** ``O2, O1, Oz``, then any other channel, in board order.

A configured channel wins when the recording has it; ``docs/sleep-staging.md`` discusses what
the substitutes change.
"""

from __future__ import annotations

import re
from typing import Sequence

from .. import constants

_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("central", ("C4", "C3", "CZ", "C2", "C1", "C6", "C5")),
    ("temporo-parietal", ("TP10", "TP9", "T8", "T7", "T4", "T3", "T6", "T5", "P4", "P3", "PZ")),
    ("frontal", ("F4", "F3", "FZ", "F8", "F7", "FC4", "FC3", "FCZ", "AF8", "AF7", "FP2", "FP1")),
    ("occipital", ("O2", "O1", "OZ")),
)


class ChannelNotFound(ValueError):
    """The configured channel is not one of the recording's."""


def electrode(name: str) -> str:
    """``"CZ-A2"`` -> ``"CZ"``: the active electrode of a derivation name, upper-case."""
    return re.split(r"[-/ ]", name.strip(), maxsplit=1)[0].upper()


def pick_channel(channel_names: Sequence[str], requested: str = constants.SLEEP_CHANNEL_AUTO) -> tuple[str, str]:
    """``(channel, why)`` for a recording with ``channel_names``.

    Raises
    ------
    ChannelNotFound
        ``requested`` names a channel the recording lacks (the message lists the ones it has).
    ValueError
        The recording has no channel at all.
    """
    names = list(channel_names)
    if not names:
        raise ValueError("the recording names no EEG channel")
    if requested and requested != constants.SLEEP_CHANNEL_AUTO:
        for name in names:
            if name.lower() == requested.lower():
                return name, "configured"
        raise ChannelNotFound(f"channel {requested!r} is not in this recording (it has {', '.join(names)})")
    by_electrode = {electrode(name): name for name in reversed(names)}
    for group, positions in _GROUPS:
        for position in positions:
            if position in by_electrode:
                return by_electrode[position], f"auto: {group} ({position})"
    return names[0], "auto: first channel (no 10-20 name recognised)"
