"""The soak test's command: ``python bench/soak.py --help`` says what it does and takes.

The soak lives in the bench/soaking/ package: ``stack`` (the processes, the SMTP sink, the memory sampler),
``database`` (the preparation and the counts read afterwards), ``load`` (the traffic), ``verdicts`` (what counts
as an error, when memory is flat), ``report`` (the summary and the JSON) and ``run`` (the arguments and the steps
in order). A script and not ``python -m``: CI, the README and people run ``bench/soak.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, only bench/ is on the path: the checkout goes first, for bench.soaking and for the project
# the soak seeds in this process (its own code, not an installed copy).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.soaking.run import main  # noqa: E402 - importable once the checkout is on the path

if __name__ == "__main__":
    sys.exit(main())
