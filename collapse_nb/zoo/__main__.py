"""``python -m collapse_nb.zoo [NAME ...] --out DIR [--seed N]``: the same as ``collapse-nb zoo``.

Only the zoo command's module is imported (it imports this package when it runs, not when it is imported).
"""
import sys

from ..cli.zoo import main

sys.exit(main())
