"""Focus-driven Do Not Disturb (skill-daemon section 4.9, ``/v1/settings/dnd/*``).

While the automation is on, the live focus score (from the ``EegBands`` frames the capture
worker already produces) turns the desktop's Do Not Disturb on when it stays high, and off when
it has stayed low for a while. :mod:`.config` holds the user's settings, :mod:`.focus` the score
and the pure state machine, :mod:`.desktop` the desktop back ends, :mod:`.service` the wiring.
"""
