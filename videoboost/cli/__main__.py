"""``python -m videoboost.cli`` is ``videoboost``."""

import sys

from videoboost.cli.main import main

sys.exit(main())
