from migrator.cli import main

__all__: list[str] = []  # run as a program: nothing to import from here

main()
