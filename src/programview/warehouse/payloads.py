"""Raw payloads stored compressed, with a preset dictionary per stream.

Why: the raw payloads are what makes ``programview remap`` and the unchanged-record skip
possible, but stored as JSON text they were 92 MB of the demo's 109 MB warehouse. One
payload compresses about 5x alone; payloads of one stream share most of their text (field
names, URLs, status and user objects), which a compressor can exploit across records when
given a *preset dictionary*: a sample of the stream's own payloads. With it a payload
compresses about 8x, so the warehouse shrinks to well under a third (figures:
benchmarks/storage.py). With a dictionary, zstandard does it about 4x faster than zlib did
(compression was a quarter of the engine's write time), at a similar ratio.

Format of ``raw_payloads.payload`` (bytes), versioned by its first byte:

* ``0x01`` + zlib stream: compressed without a dictionary.
* ``0x02`` + dictionary id (4 bytes, big endian) + zlib stream compressed with that
  ``payload_dictionaries`` row (written before zstandard; still read).
* ``0x03`` + dictionary id (4 bytes, big endian) + zstandard frame compressed with that
  row as a raw-content dictionary.

A dictionary is built once per (source, stream), from the first page of at least
``DICTIONARY_MIN_RECORDS`` records written (or by migration 0011 from the stored rows), and
never changes: rows name it by id, so a new dictionary would only ever be added. Text is
encoded UTF-8 with ``surrogatepass``, so a payload holding a lone surrogate round-trips.
The content hash (``raw_payloads.hash``) stays the sha256 of the canonical JSON text: the
unchanged-record skip does not depend on how the text is stored.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
import zstandard
from sqlalchemy.engine import Connection

from programview import clock
from programview.warehouse import db

__all__ = ["PayloadCodec", "build_dictionary", "compress", "decompress", "read_text"]

PLAIN = 0x01
WITH_DICTIONARY = 0x02  # zlib
ZSTD_WITH_DICTIONARY = 0x03
LEVEL = 6  # zlib, for payloads without a dictionary
#: zstandard's level with a dictionary: 3 takes about half the time of 5 (Jira Data Center
#: issues, 10 KB of JSON each: 22 vs 41 us) for 7% more compressed bytes (508 vs 476 a
#: payload, ~1% of the warehouse); compression was a tenth of a full sync's write time.
#: Levels 7-9 gain 5-10% in size for 2-3x the time of 5.
ZSTD_LEVEL = 3
#: zlib used at most a 32 KiB window; zstandard keeps the same dictionaries.
DICTIONARY_BYTES = 32 * 1024
#: A page with fewer records does not make a dictionary (too little to sample).
DICTIONARY_MIN_RECORDS = 20
#: Records sampled for a dictionary (spread over the page).
DICTIONARY_SAMPLE = 64

_HEADER = struct.Struct(">BI")
_DICTIONARY_FORMATS = (WITH_DICTIONARY, ZSTD_WITH_DICTIONARY)


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def build_dictionary(texts: Sequence[str]) -> bytes:
    """A preset dictionary from sample payloads of one stream: an even spread of them,
    concatenated, the last ``DICTIONARY_BYTES`` (zlib matches best near the window's end)."""
    if not texts:
        return b""
    step = max(1, len(texts) // DICTIONARY_SAMPLE)
    sample = b"".join(_encode(t) for t in texts[::step][:DICTIONARY_SAMPLE])
    return sample[-DICTIONARY_BYTES:]


#: Compressors and decompressors holding a dictionary, by (id, dictionary): loading a
#: dictionary hashes all of it, so it is done once per dictionary, not per payload.
_COMPRESSORS: dict[tuple[int, bytes], zstandard.ZstdCompressor] = {}
_DECOMPRESSORS: dict[tuple[int, bytes], zstandard.ZstdDecompressor] = {}


def _dict(zdict: bytes) -> zstandard.ZstdCompressionDict:
    return zstandard.ZstdCompressionDict(zdict, dict_type=zstandard.DICT_TYPE_RAWCONTENT)


def _compressor(ident: int, zdict: bytes) -> zstandard.ZstdCompressor:
    key = (ident, zdict)
    comp = _COMPRESSORS.get(key)
    if comp is None:
        if len(_COMPRESSORS) >= 64:
            _COMPRESSORS.clear()
        prepared = _dict(zdict)
        prepared.precompute_compress(level=ZSTD_LEVEL)
        comp = _COMPRESSORS[key] = zstandard.ZstdCompressor(
            dict_data=prepared, write_checksum=False, write_dict_id=False
        )
    return comp


def _decompressor(ident: int, zdict: bytes) -> zstandard.ZstdDecompressor:
    key = (ident, zdict)
    dec = _DECOMPRESSORS.get(key)
    if dec is None:
        if len(_DECOMPRESSORS) >= 64:
            _DECOMPRESSORS.clear()
        dec = _DECOMPRESSORS[key] = zstandard.ZstdDecompressor(dict_data=_dict(zdict))
    return dec


def compress(text: str, dictionary: tuple[int, bytes] | None = None) -> bytes:
    """``text`` in the stored format, with ``(id, bytes)`` of a dictionary or without."""
    if dictionary is None:
        return bytes([PLAIN]) + zlib.compress(_encode(text), LEVEL)
    return _HEADER.pack(ZSTD_WITH_DICTIONARY, dictionary[0]) + _compressor(*dictionary).compress(
        _encode(text)
    )


def dictionary_id(blob: bytes) -> int | None:
    """The dictionary a stored payload needs, or ``None``."""
    return _HEADER.unpack_from(blob)[1] if blob[0] in _DICTIONARY_FORMATS else None


def decompress(blob: bytes | memoryview, dictionaries: dict[int, bytes]) -> str:
    """A stored payload as its canonical JSON text (``dictionaries``: id -> bytes)."""
    data = bytes(blob)
    kind = data[0]
    if kind == PLAIN:
        raw = zlib.decompress(data[1:])
    elif kind == ZSTD_WITH_DICTIONARY:
        ident = _HEADER.unpack_from(data)[1]
        raw = _decompressor(ident, dictionaries[ident]).decompress(data[_HEADER.size :])
    elif kind == WITH_DICTIONARY:
        ident = _HEADER.unpack_from(data)[1]
        dec = zlib.decompressobj(15, dictionaries[ident])
        raw = dec.decompress(data[_HEADER.size :]) + dec.flush()
    else:
        raise ValueError(f"unknown raw payload format {kind:#x}")
    return raw.decode("utf-8", "surrogatepass")


class PayloadCodec:
    """Compresses and decompresses raw payloads against one warehouse, loading and creating
    ``payload_dictionaries`` rows as needed (cached for the codec's life: one sync stream,
    one remap). Not thread-safe; the engine writes from one thread at a time."""

    def __init__(self) -> None:
        self._by_id: dict[int, bytes] = {}
        self._for_stream: dict[tuple[str, str], int | None] = {}

    def encode(
        self, conn: Connection, source: str, stream: str, texts: Sequence[str]
    ) -> list[bytes]:
        """``texts`` compressed with the stream's dictionary (made from them when the
        stream has none yet and they are enough to sample)."""
        ident = self._stream_dictionary(conn, source, stream, texts)
        dictionary = None if ident is None else (ident, self._by_id[ident])
        return [compress(t, dictionary) for t in texts]

    def decode(self, conn: Connection, blobs: Iterable[bytes | memoryview]) -> list[str]:
        """Stored payloads as text, loading the dictionaries they name."""
        data = [bytes(b) for b in blobs]
        missing = {i for b in data if (i := dictionary_id(b)) is not None} - set(self._by_id)
        if missing:
            self._load(conn, missing)
        return [decompress(b, self._by_id) for b in data]

    def _load(self, conn: Connection, ids: set[int]) -> None:
        t = db.table("payload_dictionaries")
        for row in conn.execute(sa.select(t.c.id, t.c.dictionary).where(t.c.id.in_(ids))):
            self._by_id[row.id] = bytes(row.dictionary)

    def _stream_dictionary(
        self, conn: Connection, source: str, stream: str, texts: Sequence[str]
    ) -> int | None:
        key = (source, stream)
        if self._for_stream.get(key) is not None:
            return self._for_stream[key]
        t = db.table("payload_dictionaries")
        row: Any = conn.execute(
            sa.select(t.c.id, t.c.dictionary)
            .where(t.c.source_name == source, t.c.stream == stream)
            .order_by(t.c.id)
            .limit(1)
        ).first()
        if row is None and len(texts) >= DICTIONARY_MIN_RECORDS:
            row = create_dictionary(conn, source, stream, build_dictionary(texts))
        if row is None:
            return None  # stays unknown: a later, bigger page may make one
        self._by_id[row[0]] = bytes(row[1])
        self._for_stream[key] = row[0]
        return row[0]


def create_dictionary(conn: Connection, source: str, stream: str, zdict: bytes) -> tuple[Any, ...]:
    """Store a new dictionary for (source, stream); returns ``(id, bytes)``."""
    t = db.table("payload_dictionaries")
    res = conn.execute(
        sa.insert(t).values(
            source_name=source, stream=stream, dictionary=zdict, created_at=clock.utc_now()
        )
    )
    assert res.inserted_primary_key is not None
    return (int(res.inserted_primary_key[0]), zdict)


def read_text(conn: Connection, blob: bytes | memoryview) -> str:
    """One stored payload as its canonical JSON text (for ad-hoc reads and tests)."""
    return PayloadCodec().decode(conn, [blob])[0]
