"""``python -m homolr``: the same as the ``homolr`` console script."""

import sys

from homolr.cli import main

sys.exit(main())
