"""Entry point (``loadengine`` and ``python -m loadengine``).

Signal handlers go in before anything heavy is imported: a Ctrl-C or SIGTERM during
start-up must still end in a results file and exit code 130/143, not a traceback.
"""

from loadengine.core.stop import StopFlag, install


def main() -> None:
    stop = StopFlag()
    install(stop)
    from loadengine.cli import main as cli_main

    cli_main(stop=stop)


if __name__ == "__main__":
    main()
