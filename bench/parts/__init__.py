"""The benchmark's parts, one module (or package) each; bench/suite.py lists them."""
