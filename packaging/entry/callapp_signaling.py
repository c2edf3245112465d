"""Frozen entry point of ``callapp-signaling``, the standalone server."""

import sys

from callapp.signaling.cli import main

if __name__ == "__main__":
    sys.exit(main())
