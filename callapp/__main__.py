"""``python -m callapp``: the same as the ``callapp`` command."""

import sys

from callapp.app import main

sys.exit(main())
