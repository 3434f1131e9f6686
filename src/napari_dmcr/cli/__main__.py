import sys

from napari_dmcr.cli import main

sys.exit(main())
