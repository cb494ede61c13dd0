"""``python -m collapse_nb.zoo [NAME ...] --out DIR [--seed N]``: the same as ``collapse-nb zoo``."""
import sys

from ..cli import main

sys.exit(main(["zoo", *sys.argv[1:]]))
