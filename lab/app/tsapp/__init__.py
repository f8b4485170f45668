"""The lab's Enterprise Task Scheduling System: api, scheduler, worker, load generator, webhook receiver."""

import os

VERSION = os.environ.get("TSAPP_VERSION", "0.0.0-dev")
