"""Podium's wire vocabulary, defined once: the server and the Python SDK both import it.

Pure and small on purpose: no I/O, no import of any other `podium` package,
so `import podium.client` stays free of the server. `web/podium/protocol.js`
holds the JavaScript copy (no build step); `tests/protocol/` fails when they
differ.
"""
