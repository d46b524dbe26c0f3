"""``python -m server.cli``: the ``stackserve`` command."""

import sys

from server.cli.main import main

sys.exit(main())
