"""``python -m inbox_daemon``: the ``inbox-daemon`` command."""

from inbox_daemon.cli import main

if __name__ == "__main__":
    main()
