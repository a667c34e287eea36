import sys

from wacluster.cli import main

sys.exit(main())
