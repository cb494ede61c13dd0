"""collapse_nb: turn a failed training run's files into tidy tables, findings and a report.

>>> import collapse_nb as cnb
>>> run = cnb.load("path/to/run_dir")          # doctest: +SKIP
>>> run.scalars.head(); run.epochs; run.outputs; run.grads   # doctest: +SKIP
>>> for f in cnb.diagnose(run): print(f)        # doctest: +SKIP
"""
from .compare import compare
from .diagnose import diagnose, root_causes
from .diff import diff
from .errors import (CollapseNBError, MissingPathError, NothingReadableError, SeveralRunsError, UnknownFormatError,
                     UnreadableFileError)
from .findings import Finding
from .loading import formats, load
from .runs import Runs, load_runs
from .run import Run

__version__ = "0.1.0"

__all__ = ["load", "load_runs", "Runs", "formats", "Run", "diagnose", "root_causes", "compare", "diff", "Finding",
           "CollapseNBError", "MissingPathError", "NothingReadableError", "SeveralRunsError", "UnknownFormatError",
           "UnreadableFileError",
           "__version__"]
