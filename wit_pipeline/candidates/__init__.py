"""``wit candidates``: (image URL, text) pairs from WAT, WARC, tables or image-search APIs.

- ``warc_records.py``: a fast, fault-tolerant WARC/WAT record reader (gzip member by member).
- ``sources_wat.py``, ``sources_warc.py``, ``sources_table.py``, ``sources_search.py``: one per source.
- ``filters.py``: text clean-up and filters (pure, each switchable, each with its drop reason).
- ``language.py``: seeded langdetect, called once per distinct text.
- ``pipeline.py``: the Beam job; ``cli.py``: the command.
"""
