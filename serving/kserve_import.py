"""Import kserve without letting it read this process's command line.

`import kserve` imports kserve.model_server, which in kserve 0.21 parses sys.argv with its own
argparse parser at import time. argparse accepts option prefixes, so kubeface's `--model URI`
would be read as kserve's `--model_name`, and a prefix shared by two kserve options would end
the process. Every kubeface module imports kserve through this one.
"""

import sys

_argv = sys.argv
sys.argv = _argv[:1]
try:
    import kserve  # noqa: F401
    import kserve.model_server  # noqa: F401
finally:
    sys.argv = _argv
