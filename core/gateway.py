"""The engine, assembled: settings → store → pool, upstream client, catalog, chat service.

One ``Gateway`` per process. Building it does no network I/O beyond opening the store, so a cold serverless
instance is ready fast; connections are made on first use.
"""

from __future__ import annotations

from core import runtime_settings
from core.apikeys import ApiKeys
from core.catalog import Catalog
from core.chat import ChatService
from core.grok.client import GrokClient
from core.ledger import Ledger
from core.media import MediaStore
from core.pool import TokenPool
from core.settings import Settings
from core.store import Store, open_store
from core.video_queue import VideoDispatch


class Gateway:
    def __init__(self, settings: Settings, store: Store, client: GrokClient | None = None) -> None:
        self.settings = settings
        self.store = store
        self.catalog = Catalog.load(settings.model_aliases, claude_model=settings.claude_model)
        self.pool = TokenPool(store, settings)
        self.client = client or GrokClient(settings)
        self.ledger = Ledger(store, settings)  # request log, statistics, key usage
        self.keys = ApiKeys(store, settings)  # store-managed client API keys
        self.chat = ChatService(settings, self.pool, self.client, self.ledger)
        # Every lease reads the run-time settings' version stamp: a change is seen at no extra store command.
        self.pool.version_watch = (
            runtime_settings.version_key(store), lambda version: runtime_settings.note_version(version, store)
        )
        self.media = MediaStore.from_settings(settings, store)  # no I/O; boto3 loads on first S3 use
        self.video_dispatch = VideoDispatch.from_settings(settings)  # VIDEO_DRIVE=async only

    @classmethod
    def from_settings(cls, settings: Settings) -> Gateway:
        return cls(settings, open_store(settings))

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.store.close()
