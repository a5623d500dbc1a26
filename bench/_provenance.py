"""Print where and when a measurement ran, for a result file made by a command that is not a bench script.

    python bench/_provenance.py "what was run"
"""

import sys

from _common import provenance

if __name__ == "__main__":
    print(provenance().split("\n")[0])
    print(f"# command: {' '.join(sys.argv[1:])}")
