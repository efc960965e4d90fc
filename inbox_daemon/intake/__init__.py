"""How mail arrives, protocol edges only: SMTP (``smtp``), IMAP (``imap``, ``imap_client``)
and files (``files``). Each stores the raw bytes through ``inbox_daemon.processing.Flow``,
which hands the stored message's id on to processing, and acknowledges only after that."""
