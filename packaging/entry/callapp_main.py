"""Frozen entry point of ``callapp`` (and ``callapp-cli`` on Windows)."""

import sys

from callapp.app import main

if __name__ == "__main__":
    sys.exit(main())
