import sys

from cfsam_keras.cli import main

sys.exit(main())
