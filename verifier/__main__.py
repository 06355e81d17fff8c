"""`python -m verifier ...` is the `verifier` console script."""

from verifier.cli import main

if __name__ == "__main__":
    main(prog_name="verifier")
