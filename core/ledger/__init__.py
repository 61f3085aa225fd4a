"""The request ledger: one record per API request (the request log), hourly and daily statistics, key usage.

``record.py`` gathers what a request did, ``writer.py`` turns it into store writes (folded into the final settle
of a chat answer, or written alone), ``reader.py`` serves the admin API's log queries and charts.
"""

from core.ledger.record import RequestRecord, begin, current, end, may_see, note_media, requester
from core.ledger.writer import LATENCY_BUCKETS, Ledger

__all__ = [
    "LATENCY_BUCKETS", "Ledger", "RequestRecord", "begin", "current", "end", "may_see", "note_media", "requester",
]
