"""The ``programview`` command: a thin layer over library functions.

Each command group lives in its own module here and only parses arguments, calls the
library and turns exceptions into messages and exit codes:

* 0 ok, 1 failed, 2 bad usage or configuration, 3 partial (some records quarantined; for
  ``verify``: a difference no documented rule explains), 4 unhealthy (``status``).
"""

from __future__ import annotations

import click

# Importing a module registers its commands on ``main_group``.
from programview.cli import (  # noqa: F401,E402  (registration side effects)
    benefits,
    config_cmd,
    daemon,
    db,
    demo,
    export,
    remap,
    report,
    simulate,
    status,
    sync,
    transform,
    verify,
)
from programview.cli._common import main_group

main = main_group

__all__ = ["main", "click"]
