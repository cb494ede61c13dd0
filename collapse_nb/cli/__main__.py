"""``python -m collapse_nb.cli ...``: the same as ``collapse-nb ...``."""
import sys

from . import main

sys.exit(main())
