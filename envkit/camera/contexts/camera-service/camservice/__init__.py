"""envkit reference camera service.

JSON-RPC 2.0 over WebSocket (port 8002, path ``/ws``) plus an HTTP health server
(port 8003), publishing each camera to MediaMTX as path ``cameraN``.  Only the
standard library and the Debian bookworm packages of the envkit base image
(aiohttp 3.8, websockets 10.4, PyJWT 2.6) are used, because the image is built
without network access to PyPI.
"""

__version__ = "0.1.0"
