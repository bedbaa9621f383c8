"""`python -m generator build [options]`."""
from generator.cli import main

main()
