"""gunicorn settings for Verifier: `gunicorn --config gunicorn.conf.py wsgi:app`.

The app adds a filter to gunicorn's access logger so upload-link tokens are logged as
/u/[redacted] (verifier.web.http.RedactLinkTokens).
"""

import os
import threading

from verifier.portal import documents

accesslog = "-"
# Uploads are parsed in memory and decoded by the host's decoders; a slow decode is cut off there.
timeout = 60


def when_ready(server):
    """Start the host's decoders (verifier.portal.supervisor) once, from the master, before any
    worker: every worker shares them, and they live as long as the master."""
    os.environ["VERIFIER_DECODER_OWNER"] = str(os.getpid())  # inherited by the workers
    documents.start_decoders(owner=os.getpid())


def post_worker_init(worker):
    """Wait for the host's decoders in the background: the first upload finds them running."""
    threading.Thread(target=documents.get_default_pool().warm, daemon=True).start()


def worker_exit(server, worker):
    """The worker stops using the decoders; they stay for the other workers."""
    documents.shutdown(wait=False)
