import sys

from unitb.cli import main

sys.exit(main())
