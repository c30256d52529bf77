from ainn_cli.cli import main

main()
