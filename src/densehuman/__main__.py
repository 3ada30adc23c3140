import sys

from densehuman.cli import main

sys.exit(main())
