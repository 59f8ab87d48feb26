"""Lab Streaming Layer: finding EEG streams on the network, pairing them, and recording from them.

``discovery`` asks liblsl which streams are announced; ``config`` is what a user paired (a JSON
file in the data dir); ``service`` is what the ``/v1/lsl`` routes call; ``source`` is the capture
worker's reader of one paired stream and ``autoconnect`` its scan for paired streams between
sessions. pylsl (which bundles liblsl) is imported only where a stream is looked for or read,
so importing this package costs nothing.
"""
