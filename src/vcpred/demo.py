"""`make demo`: the main job on built-in synthetic data."""

import sys


def main() -> int:
    print("vcpred demo: not built yet (the end-to-end demo lands with the synthetic cohort, imaging, "
          "training and evaluation issues). Research use only, not a medical device.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
