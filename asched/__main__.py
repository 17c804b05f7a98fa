from __future__ import annotations

import sys

from asched.cli.main import main

sys.exit(main())
