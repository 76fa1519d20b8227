"""The `parafuse` console script: mounts each package's sub-commands."""
import sys


def main(argv=None):
    print("parafuse")
    return 0
