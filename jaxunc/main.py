"""Entry point: python -m jaxunc.main --config=configs/smollm2.py [--config.data.limit=12 ...]"""

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a configs/*.py file.", lock_config=True)
flags.mark_flag_as_required("config")


def main(argv):
    del argv
    from jaxunc.pipeline import run

    logging.set_verbosity(logging.INFO)
    run(_CONFIG.value)


def run_main():
    app.run(main)


if __name__ == "__main__":
    run_main()
