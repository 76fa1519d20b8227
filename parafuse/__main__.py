"""`python -m parafuse ...` (what `accelerate launch -m parafuse train sft ...` runs on every rank)."""
import sys

from parafuse.cli import main

sys.exit(main())
