"""Shard files: pieces written per bundle, then packed into shards sized by data.

Writers never hold a file open across bundles (a bundle's output must be durable when the
bundle ends), so each bundle writes its blobs to its own piece files in the staging folder,
starting a new piece when one reaches the target shard size. The publisher then packs the
pieces of a split into shards of at most that size (first fit, largest pieces first): a
shard of one piece is that piece renamed into place (its one rename), a shard of several is
their concatenation (TFRecord files, and gzip files, are concatenations of their parts).
With --num_shards=N, records are grouped by a hash of each into N groups instead (a shuffle
of the data), each written as one piece.
"""

from __future__ import annotations

import dataclasses
import gzip
import uuid
import zlib

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindows

from bertdata import schema
from bertdata.schema import Compression
from bertdata.wire_format import split_framed

# A gzip stream of no data: an empty shard of a --compression=gzip dataset.
_EMPTY_GZIP = gzip.compress(b"", mtime=0)


@dataclasses.dataclass(frozen=True)
class Piece:
    """A file of framed records in the staging folder."""

    split: str
    path: str
    records: int
    nbytes: int


@dataclasses.dataclass(frozen=True)
class ShardPlan:
    """One final shard: its name and the pieces it is made of (none: an empty shard)."""

    split: str
    name: str
    pieces: tuple[Piece, ...]

    @property
    def records(self) -> int:
        return sum(p.records for p in self.pieces)


def beam_compression(compression: Compression) -> str:
    return CompressionTypes.GZIP if compression is Compression.GZIP else \
        CompressionTypes.UNCOMPRESSED


class _PieceWriter:
    """Appends blobs to piece files of at most `limit` bytes (the last blob may exceed it)."""

    def __init__(self, staging_dir: str, split: str, compression: Compression, limit: int):
        self.staging_dir, self.split = staging_dir, split
        self.compression, self.limit = compression, limit
        self._file = None

    def write(self, count: int, data: bytes) -> Piece | None:
        if self._file is None:
            name = f"{self.split}-piece-{uuid.uuid4().hex}{self.compression.suffix}"
            self._path = FileSystems.join(self.staging_dir, name)
            self._file = FileSystems.create(
                self._path, compression_type=beam_compression(self.compression))
            self._records = self._bytes = 0
        self._file.write(data)
        self._records += count
        self._bytes += len(data)
        return self.close() if self._bytes >= self.limit else None

    def close(self) -> Piece | None:
        if self._file is None:
            return None
        self._file.close()
        self._file = None
        return Piece(self.split, self._path, self._records, self._bytes)


class WritePiecesFn(beam.DoFn):
    """(count, blob) -> Piece of every file written, closed by the end of each bundle."""

    def __init__(self, staging_dir: str, split: str, compression: Compression, limit: int):
        self.args = (staging_dir, split, compression, limit)

    def start_bundle(self):
        self.writer = _PieceWriter(*self.args)

    def process(self, blob):
        piece = self.writer.write(*blob)
        if piece is not None:
            yield piece

    def finish_bundle(self):
        piece = self.writer.close()
        if piece is not None:
            yield GlobalWindows.windowed_value(piece)


def _write_group(keyed_blobs, staging_dir, split, compression):
    _, blobs = keyed_blobs
    writer = _PieceWriter(staging_dir, split, compression, limit=1 << 62)
    for blob in blobs:
        writer.write(*blob)
    piece = writer.close()
    if piece is not None:
        yield piece


class WriteShardPieces(beam.PTransform):
    """A split's (count, blob) elements -> the Pieces holding them, in the staging folder."""

    def __init__(self, staging_dir: str, split: str, compression: Compression,
                 shard_bytes: int, num_shards: int = 0):
        super().__init__()
        self.staging_dir, self.split, self.compression = staging_dir, split, compression
        self.shard_bytes, self.num_shards = shard_bytes, num_shards

    def expand(self, blobs):
        if not self.num_shards:
            return blobs | "Write" >> beam.ParDo(WritePiecesFn(
                self.staging_dir, self.split, self.compression, self.shard_bytes))
        n = self.num_shards
        # Record by record: a blob holds a bundle's worth of records, and hashing whole
        # blobs left shards empty or several times the size of others.
        return (
            blobs
            | "Records" >> beam.FlatMap(lambda blob: ((1, r) for r in split_framed(blob[1])))
            | "Key" >> beam.Map(lambda record: (zlib.crc32(record[1]) % n, record))
            | "Group" >> beam.GroupByKey()
            | "Write" >> beam.FlatMap(_write_group, self.staging_dir, self.split,
                                      self.compression)
        )


def plan_shards(pieces, split: str, compression: Compression, shard_bytes: int,
                num_shards: int = 0) -> list[ShardPlan]:
    """The final shards of a split, named SPLIT-SSSSS-of-NNNNN, in a fixed order."""
    pieces = sorted((p for p in pieces if p.split == split),
                    key=lambda p: (-p.nbytes, p.path))
    if num_shards:
        groups = [[p] for p in pieces] + [[] for _ in range(num_shards - len(pieces))]
    else:
        groups, room = [], []
        for piece in pieces:  # first fit, largest first
            for i, left in enumerate(room):
                if piece.nbytes <= left:
                    groups[i].append(piece)
                    room[i] -= piece.nbytes
                    break
            else:
                groups.append([piece])
                room.append(shard_bytes - piece.nbytes)
    return [ShardPlan(split, schema.shard_name(split, i, len(groups), compression), tuple(g))
            for i, g in enumerate(groups)]


def _move(source: str, dest: str) -> None:
    """Renames, tolerating a retry of an attempt that already moved the file."""
    if not FileSystems.exists(source) and FileSystems.exists(dest):
        return
    FileSystems.rename([source], [dest])


def materialize(plan: ShardPlan, output_dir: str, staging_dir: str) -> tuple[str, str, int]:
    """Puts one shard in place; returns (split, name, records)."""
    dest = FileSystems.join(output_dir, plan.name)
    if len(plan.pieces) == 1:
        _move(plan.pieces[0].path, dest)
        return plan.split, plan.name, plan.records
    assembled = FileSystems.join(staging_dir, plan.name)
    if not FileSystems.exists(dest):
        compressed = CompressionTypes.UNCOMPRESSED  # pieces are copied byte for byte
        with FileSystems.create(assembled, compression_type=compressed) as out:
            if not plan.pieces and plan.name.endswith(".gz"):
                out.write(_EMPTY_GZIP)
            for piece in plan.pieces:
                with FileSystems.open(piece.path, compression_type=compressed) as f:
                    while block := f.read(1 << 22):
                        out.write(block)
    _move(assembled, dest)
    return plan.split, plan.name, plan.records
