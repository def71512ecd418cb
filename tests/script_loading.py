"""Load a script of the repository (tools/*.py, demo/demo.py, ../shared/tools/*.py) as a module.

Scripts are not importable packages (some have dashes in their names); tests call their
functions directly. ``tests/`` is on ``sys.path`` through tests/conftest.py.
"""

import importlib.util
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(path: str, module_name: str, *, register: bool = False):
    """Execute the script at ``path`` (absolute, or relative to the repository root) as module
    ``module_name``. With ``register`` the module is kept in ``sys.modules`` and reused by later
    calls (for scripts whose objects are pickled or imported by name)."""
    if register and module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, os.path.join(REPO, path))
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
