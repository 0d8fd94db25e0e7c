"""Entry point of the frozen app: ``desktop/__main__.py`` uses a relative import, which a top-level
script cannot, so the bundle starts here and calls the same ``main``."""

import sys

from desktop.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
