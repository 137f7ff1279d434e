"""`python -m watcher` and the `account-watcher` console script.

The cyclic garbage collector is off while the command line's modules load: start-up
creates ~90,000 objects that live as long as the process, and the collector's passes
over them were ~6% of the CPU to READY=1. `watcher.cli.main` turns it on again before
any command runs (`run`: once start-up is done, right after `gc.freeze()`).
"""

import gc
from typing import NoReturn


def main() -> NoReturn:
    gc.disable()
    from watcher.cli.main import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
