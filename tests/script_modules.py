"""The scripts of scripts/ as modules, for the tests that call their functions."""

import importlib.util
import sys
import types

from paths import ROOT

SCRIPTS = ROOT / "scripts"


def load_script(name: str) -> types.ModuleType:
    """Return scripts/<name>.py as the module ``name``, loaded once.

    The scripts it imports are found beside it, as when it runs from its folder.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    finally:
        sys.path.remove(str(SCRIPTS))
    return module
