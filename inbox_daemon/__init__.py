"""inbox-daemon: Amazon buyer opt-out notices in, a global blocklist out.

Data flow: intake (SMTP, IMAP, files) -> notices (pure parsing) -> store (SQLAlchemy)
-> lookup (in-memory index and the query socket).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
