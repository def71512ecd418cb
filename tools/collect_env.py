#!/usr/bin/env python
"""Same as `python -m mask2former.collect_env`."""
from mask2former.collect_env import main

if __name__ == "__main__":
    main()
