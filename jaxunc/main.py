"""Entry point: python -m jaxunc.main --config=configs/smollm2.py [--config.data.limit=12 ...]"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a configs/*.py file.", lock_config=True)
flags.mark_flag_as_required("config")


# Errors jaxunc raises with a message meant for the user (bad config, data, checkpoint, paths).
USER_ERRORS = (ValueError, FileNotFoundError, RuntimeError, TimeoutError)


def main(argv):
    del argv
    from jaxunc.pipeline import run

    logging.set_verbosity(logging.INFO)
    try:
        run(_CONFIG.value)
    except USER_ERRORS as err:
        if os.environ.get("JAXUNC_DEBUG"):
            raise
        sys.exit(f"jaxunc: error: {err}\n(set JAXUNC_DEBUG=1 for the traceback)")


def run_main():
    app.run(main)


if __name__ == "__main__":
    run_main()
