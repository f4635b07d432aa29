import sys

from constraintc.cli import main

sys.exit(main())
