"""Avro files as bag partitions (fastavro, the ``avro`` extra): one partition per file, read or written whole."""
from __future__ import annotations

import io

from ..runtime.storage import open_store
from ..runtime.storage.paths import display

AVRO_EXTRA = "read_avro and to_avro need fastavro: pip install 'graphwren[avro]'"


def fastavro():
    """The fastavro module, or an ImportError naming the extra that installs it."""
    try:
        import fastavro as module
    except ImportError:
        raise ImportError(AVRO_EXTRA) from None
    return module


class ReadAvroFile:
    """Reader: the records (dicts) of avro file i, in file order."""

    def __init__(self, files: list[tuple]):
        self.files = list(files)   # (store URL, key, size)

    def __call__(self, ctx):
        store_url, key, _ = self.files[ctx.task]
        ctx.where = display(store_url, key)
        data = open_store(store_url).get(key)
        return iter(list(fastavro().reader(io.BytesIO(data))))


class WriteAvro:
    """Sink: one avro file per partition with the given schema; returns the file's URL."""

    def __init__(self, targets: list[tuple[str, str]], schema: dict, codec: str, sync_interval: int,
                 metadata: dict | None):
        self.targets, self.schema, self.codec = targets, schema, codec
        self.sync_interval, self.metadata = sync_interval, metadata

    def __call__(self, ctx, it):
        store_url, key = self.targets[ctx.task]
        module = fastavro()
        out = io.BytesIO()
        module.writer(out, module.parse_schema(self.schema), list(it), codec=self.codec,
                      sync_interval=self.sync_interval, metadata=self.metadata)
        open_store(store_url).put(key, out.getvalue())
        return [display(store_url.split("?", 1)[0], key)]   # the file, without the store options
