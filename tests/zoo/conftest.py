"""The zoo tests' shared session fixture ``zoo_run`` (defined in the package's ``__init__``, which skips the
package without torch or tensorboard), made visible to every test module of the package."""
from . import zoo_run

__all__ = ["zoo_run"]
