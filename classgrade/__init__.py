"""Class-scale autograding on top of nbgrader: sandboxed, tamper-resistant, resumable."""

__version__ = "0.1.0"
