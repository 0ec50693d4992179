"""The replay exchange: real captures served on 127.0.0.1 over the venues' own protocols.

:mod:`~tapewatch.replay.timeline` reads the captures into per-feed message lists,
:mod:`~tapewatch.replay.faults` says which faults to inject, :mod:`~tapewatch.replay.pump`
paces one feed to its connected clients and :mod:`~tapewatch.replay.server` is the aiohttp
server (Binance combined-stream websocket and REST depth, Coinbase Exchange websocket).
"""
