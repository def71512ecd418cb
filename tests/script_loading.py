"""Load a script of the repository (tools/*.py, demo/demo.py, ../shared/tools/*.py) as a module,
and the shared deterministic initialisation used by the parity fixtures.

Scripts are not importable packages (some have dashes in their names); tests call their
functions directly. ``tests/`` is on ``sys.path`` through tests/conftest.py.
"""

import importlib.util
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_TOOLS = os.path.abspath(os.path.join(REPO, "..", "shared", "tools"))


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
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)  # no half-initialised module for later calls
        raise
    return module


def deterministic_init_(module):
    """``deterministic_init_`` of ../shared/tools/deterministic_init.py (the weights the parity
    fixtures were made with): fills ``module`` in place and returns it."""
    tool = load_script(os.path.join(SHARED_TOOLS, "deterministic_init.py"),
                       "m2f_deterministic_init", register=True)
    return tool.deterministic_init_(module)
