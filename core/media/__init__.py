"""Media store: generated images and video, bytes in a local directory or an S3-compatible bucket, records in the
state store. See ``store.py`` (backends, ``MediaStore``), ``meta.py`` (records), ``chat.py`` (in-chat images),
``cleanup.py`` (cron)."""

from core.media.meta import MediaItem, extension
from core.media.store import MediaStore, MediaTooLarge, MediaUnavailable, data_url, is_media_id

__all__ = ["MediaItem", "MediaStore", "MediaTooLarge", "MediaUnavailable", "data_url", "extension", "is_media_id"]
