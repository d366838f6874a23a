"""``python -m ebm_ppl.cli``: the same as the ``ebm-ppl`` command."""

import sys

from ebm_ppl.cli import main

if __name__ == "__main__":
    sys.exit(main())
