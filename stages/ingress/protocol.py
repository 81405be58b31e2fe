"""What the shipper and the ingress server agree on: the payload's content type, where it is
posted, and where a local server listens by default. Plain constants, so that command-line
parsers can use them without loading either side."""

from __future__ import annotations

#: the payload's content type: what the shipper sends and the server takes by default
CONTENT_TYPE = "application/vnd.pipeline.payload+tgz"
API = "/api/ingress/v1"
UPLOAD_PATH = f"{API}/upload"
#: where ``pipeline ingress-server`` listens unless told otherwise
DEFAULT_BIND = "127.0.0.1:8470"
#: the local server's upload URL: where a run ships by default
DEFAULT_URL = f"http://{DEFAULT_BIND}{UPLOAD_PATH}"
