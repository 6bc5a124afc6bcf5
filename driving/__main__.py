"""``python -m driving``: the ``driving`` command (:func:`driving.commands.main`)."""

import sys

from driving.commands import main

sys.exit(main())
