"""How mail arrives: SMTP (smtp.py), IMAP (imap.py) and files (files.py), all through pipeline.py."""
