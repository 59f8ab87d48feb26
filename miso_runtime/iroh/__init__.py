"""Remote access through iroh (skill-daemon section 4.12, ``/v1/iroh/*``).

A phone (or any iroh peer) reaches this runtime through an iroh QUIC endpoint, without port
forwarding, and gets the runtime's API with the rights its registration gave it:

- :mod:`.scope`: the daemon's command groups, the ``read``/``full``/``custom`` scopes, and the
  one token scope each maps onto (so a tunnel request passes the same guard as a local one);
- :mod:`.store`: TOTP credentials and registered clients in one JSON file in the data dir;
- :mod:`.qr`: PNG QR codes as data URIs;
- :mod:`.service`: what the routes call, and the tunnel's state as the iroh worker reports it;
- :mod:`.tunnel`: the endpoint and the request bridge, run in the iroh worker process.
"""
