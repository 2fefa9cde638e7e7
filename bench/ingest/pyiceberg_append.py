#!/usr/bin/env python3
"""The baseline of the ingestion benchmark: pyiceberg's own append of a directory of files.

    pyiceberg_append.py --format json|parquet --source /abs/dir/ | s3://bucket/prefix/ \\
        --uri postgresql+psycopg2://user:pw@127.0.0.1:54329/db --warehouse /abs/warehouse \\
        [--s3-endpoint http://127.0.0.1:54340] [--table bench.events]

Does what an Autoloader run does, with pyarrow and pyiceberg instead: lists the files under the
source (names starting with `.` or `_` are skipped, as Autoloader skips them), reads every file
with pyarrow (`pyarrow.json.read_json` for JSON lines, `pyarrow.parquet.read_table` for Parquet;
from S3 through `pyarrow.fs.S3FileSystem`, each JSON object fetched whole in one GET), creates
the table from the first file's schema in a pyiceberg SQL catalog, and appends all the files'
rows in ONE `Table.append` (one snapshot), the tables concatenated in memory. JSON files after
the first are read with the first file's schema, as Autoloader reads them with the table's.

The clock starts before the catalog is opened (imports and interpreter start-up are outside it)
and stops when the append has committed. Prints one JSON object on stdout:

    {"files": N, "rows": N, "bytes_read": N, "bytes_written": N, "seconds": S,
     "read_seconds": S, "append_seconds": S, "snapshot_id": N}

`bytes_read` is the sum of the source files' sizes; `bytes_written` the size of the data files
the snapshot added (its summary's `added-files-size`); `read_seconds` runs from the start (the
catalog opened, the files listed and read), `append_seconds` covers creating the table and the
append.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def list_local(root: str) -> list[tuple[str, int]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in filenames:
            if name.startswith((".", "_")):
                continue
            path = os.path.join(dirpath, name)
            out.append((path, os.path.getsize(path)))
    return sorted(out)


def list_s3(fs, bucket_prefix: str) -> list[tuple[str, int]]:
    from pyarrow import fs as pafs

    base = bucket_prefix.rstrip("/")
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True))
    out = []
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(base) + 1 :]
        if any(seg.startswith((".", "_")) for seg in rel.split("/")):
            continue
        out.append((info.path, info.size))
    return sorted(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--format", choices=("json", "jsongz", "parquet"), required=True)
    p.add_argument("--source", required=True, help="/abs/dir/ or s3://bucket/prefix/")
    p.add_argument("--uri", required=True, help="SQLAlchemy URL of the catalog database")
    p.add_argument("--warehouse", required=True, help="local warehouse directory")
    p.add_argument("--s3-endpoint", help="endpoint of the S3 server (http://host:port)")
    p.add_argument("--table", default="bench.events")
    args = p.parse_args(argv)

    import pyarrow as pa
    import pyarrow.json as pj
    import pyarrow.parquet as pq
    from pyarrow import fs as pafs
    from pyiceberg.catalog.sql import SqlCatalog

    started = time.perf_counter()
    catalog = SqlCatalog(
        "bench",
        uri=args.uri,
        warehouse=f"file://{os.path.abspath(args.warehouse)}",
    )

    fs = None
    if args.source.startswith("s3://"):
        if not args.s3_endpoint:
            p.error("--s3-endpoint is needed for an s3:// source")
        scheme, _, host = args.s3_endpoint.partition("://")
        fs = pafs.S3FileSystem(
            endpoint_override=host.rstrip("/"),
            scheme=scheme,
            access_key="test",
            secret_key="test",
            region="us-east-1",
        )
        files = list_s3(fs, args.source[len("s3://") :])
    else:
        files = list_local(args.source)
    if not files:
        print(f"pyiceberg_append: no files under {args.source}", file=sys.stderr)
        return 1

    def read(path: str, schema):
        if args.format == "parquet":
            return pq.read_table(path, filesystem=fs)
        opts = pj.ParseOptions(explicit_schema=schema) if schema is not None else None
        if args.format == "jsongz":
            # Gzipped JSON lines: decompressed as pyarrow reads them.
            if fs is None:
                with pa.input_stream(path, compression="gzip") as f:
                    return pj.read_json(f, parse_options=opts)
            with fs.open_input_file(path) as f:
                raw = pa.BufferReader(f.read())
            with pa.CompressedInputStream(raw, "gzip") as f:
                return pj.read_json(f, parse_options=opts)
        if fs is None:
            return pj.read_json(path, parse_options=opts)
        # One GET for the whole object. read_json on an S3 stream or file fetches 1 MiB blocks,
        # each a ranged GET, which moto answers in ~50 ms each: 10x slower than this.
        with fs.open_input_file(path) as f:
            return pj.read_json(pa.BufferReader(f.read()), parse_options=opts)

    tables = []
    schema = None
    for path, _ in files:
        t = read(path, schema)
        if schema is None:
            schema = t.schema
        tables.append(t)
    data = pa.concat_tables(tables)
    del tables
    read_done = time.perf_counter()

    namespace = args.table.rsplit(".", 1)[0]
    catalog.create_namespace_if_not_exists(namespace)
    table = catalog.create_table(args.table, schema=data.schema)
    table.append(data)
    finished = time.perf_counter()

    snapshot = table.current_snapshot()
    summary = snapshot.summary if snapshot is not None else None
    written = int(summary["added-files-size"]) if summary is not None else 0
    json.dump(
        {
            "files": len(files),
            "rows": data.num_rows,
            "bytes_read": sum(size for _, size in files),
            "bytes_written": written,
            "seconds": finished - started,
            "read_seconds": read_done - started,
            "append_seconds": finished - read_done,
            "snapshot_id": snapshot.snapshot_id if snapshot is not None else None,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")
    catalog.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
