"""gunicorn settings for the web service: `gunicorn -c config/gunicorn.py config.wsgi:application`.

Threads (gthread), not only processes: annotators keep HTTP connections open between requests
(keep-alive), and a gthread worker parks idle connections in its poller, so 200 annotators do not
need 200 processes. The work per request is CPU in Python, so a few threads per process are
enough to overlap waits on PostgreSQL (commits); more only adds GIL hand-offs. bench/queue.py on
2 cores measured 4 x 8, 2 x 4 and 4 x 2 within noise of each other (issue 3); 4 x 2 was best.
"""

from __future__ import annotations

import os

bind = os.environ.get("WEB_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_WORKERS", "4"))
threads = int(os.environ.get("WEB_THREADS", "2"))
worker_class = "gthread"
keepalive = 30  # seconds an idle annotator's connection stays open (they think between requests)
backlog = 2048
timeout = 120
# Import the app once, before the fork: workers start at once and share its memory.
preload_app = True
