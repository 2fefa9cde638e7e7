#!/usr/bin/env python3
"""Reads an Iceberg table the way any other engine would, to check what Autoloader committed.

    python iceberg_read.py --uri postgres://user:pw@127.0.0.1:54329/db \\
        --warehouse file:///abs/warehouse --catalog autoloader --table ns.table

Loads the table through pyiceberg's SQL catalog (the same PostgreSQL tables `iceberg_tables` and
`iceberg_namespace_properties`, in the schema `iceberg_catalog`), scans it to Arrow and prints one
JSON object on stdout:

    {"table": "ns.table", "metadata_location": "...", "current_snapshot_id": N | null,
     "row_count": N, "columns": [names], "types": {name: Iceberg type}, "schema_id": N,
     "rows": [{col: value, ...}, ...],
     "snapshots": [{"snapshot_id": N, "parent_snapshot_id": N | null, "sequence_number": N,
                    "timestamp_ms": N, "summary": {"operation": "append", ...}}, ...],
     "partition_spec": [{"name": "ts_day", "transform": "day", "source": "ts"}, ...],
     "data_files": [{"path": "...", "partition": {"ts_day": "2025-01-01", ...}}, ...]}

With `--filter EXPR` (pyiceberg's row filter syntax, e.g. "region == 'eu'"), the object also has
`"filtered": {"filter": EXPR, "planned_files": N, "rows": [...]}`: the data files the scan with
that filter plans to read (what partition pruning leaves) and the rows it returns.

Rows are sorted by every column's string form, in column order (nulls last), so the output does
not depend on file or scan order. Values are made JSON-friendly: timestamps, dates and times as
ISO 8601 strings, decimals and UUIDs as strings, binary as lowercase hex. Snapshots are in the
order of the table's metadata (oldest first).

An S3 warehouse's server and keys come from ICEBERG_READ_S3_ENDPOINT, _ACCESS_KEY_ID,
_SECRET_ACCESS_KEY and _REGION when set.

It only reads: the catalog's tables are never created, and never migrated. Errors go to stderr
with exit status 1 (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import math
import os
import sys
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

CATALOG_SCHEMA = "iceberg_catalog"


def sqlalchemy_url(database_url: str) -> str:
    """postgres://... (as given to Autoloader) -> postgresql+psycopg2://... whose connections use
    the catalog's schema, through libpq's `options=-csearch_path=...`."""
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgres", "postgresql", "postgresql+psycopg2"):
        raise ValueError(f"not a PostgreSQL URL: {database_url!r}")
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "options"]
    query.append(("options", f"-csearch_path={CATALOG_SCHEMA}"))
    return urlunsplit(("postgresql+psycopg2", parts.netloc, parts.path, urlencode(query), ""))


def warehouse_uri(warehouse: str) -> str:
    if "://" in warehouse:
        return warehouse
    return Path(warehouse).absolute().as_uri()


def jsonable(value):
    """A JSON-serialisable form of one Arrow-to-Python value."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return value
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        # Arrow maps come back as lists of (key, value) tuples.
        return [jsonable(v) for v in value]
    return str(value)


def sort_key(row: dict, columns: list[str]):
    key = []
    for c in columns:
        v = row.get(c)
        if v is None:
            key.append((1, ""))
        elif isinstance(v, str):
            key.append((0, v))
        else:
            key.append((0, json.dumps(v, sort_keys=True)))
    return key


def snapshot_json(snapshot) -> dict:
    summary = {}
    if snapshot.summary is not None:
        summary = json.loads(snapshot.summary.model_dump_json())
    return {
        "snapshot_id": snapshot.snapshot_id,
        "parent_snapshot_id": snapshot.parent_snapshot_id,
        "sequence_number": snapshot.sequence_number,
        "timestamp_ms": snapshot.timestamp_ms,
        "summary": summary,
    }


def rows_of(arrow) -> list[dict]:
    columns = list(arrow.column_names)
    rows = [{c: jsonable(v) for c, v in r.items()} for r in arrow.to_pylist()]
    rows.sort(key=lambda r: sort_key(r, columns))
    return rows


def read(uri: str, warehouse: str, catalog_name: str, table_name: str, row_filter: str | None = None) -> dict:
    from pyiceberg.catalog.sql import SqlCatalog
    from sqlalchemy import create_engine, text

    url = sqlalchemy_url(uri)
    # The catalog would create its tables when they are missing; say so instead.
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            present = {
                r[0]
                for r in conn.execute(
                    text(
                        "select table_name from information_schema.tables "
                        "where table_schema = :s and table_name in "
                        "('iceberg_tables', 'iceberg_namespace_properties')"
                    ),
                    {"s": CATALOG_SCHEMA},
                )
            }
    finally:
        engine.dispose()
    if "iceberg_tables" not in present:
        raise LookupError(f"no Iceberg catalog in this database: {CATALOG_SCHEMA}.iceberg_tables does not exist")

    # An S3 warehouse is reached with the test server's settings, when the caller gives them.
    s3 = {
        prop: os.environ[var]
        for prop, var in (
            ("s3.endpoint", "ICEBERG_READ_S3_ENDPOINT"),
            ("s3.access-key-id", "ICEBERG_READ_S3_ACCESS_KEY_ID"),
            ("s3.secret-access-key", "ICEBERG_READ_S3_SECRET_ACCESS_KEY"),
            ("s3.region", "ICEBERG_READ_S3_REGION"),
        )
        if os.environ.get(var)
    }
    catalog = SqlCatalog(
        catalog_name,
        uri=url,
        warehouse=warehouse_uri(warehouse),
        init_catalog_tables="false",
        **s3,
    )
    try:
        table = catalog.load_table(table_name)
        arrow = table.scan().to_arrow()
        columns = list(arrow.column_names)
        rows = rows_of(arrow)
        current = table.current_snapshot()
        schema = table.schema()
        spec = table.spec()
        partition_names = [f.name for f in spec.fields]
        data_files = []
        for task in table.scan().plan_files():
            record = task.file.partition
            data_files.append({
                "path": task.file.file_path,
                "partition": {n: jsonable(record[i]) for i, n in enumerate(partition_names)},
            })
        data_files.sort(key=lambda f: f["path"])
        out = {
            "table": table_name,
            "metadata_location": table.metadata_location,
            "current_snapshot_id": current.snapshot_id if current is not None else None,
            "row_count": arrow.num_rows,
            "columns": columns,
            "types": {f.name: str(f.field_type) for f in table.schema().fields},
            "schema_id": table.schema().schema_id,
            "rows": rows,
            "snapshots": [snapshot_json(s) for s in table.metadata.snapshots],
            "partition_spec": [
                {"name": f.name, "transform": str(f.transform), "source": schema.find_column_name(f.source_id)}
                for f in spec.fields
            ],
            "data_files": data_files,
        }
        if row_filter is not None:
            scan = table.scan(row_filter=row_filter)
            out["filtered"] = {
                "filter": row_filter,
                "planned_files": len(list(scan.plan_files())),
                "rows": rows_of(scan.to_arrow()),
            }
        return out
    finally:
        catalog.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--uri", required=True, help="PostgreSQL URL of the catalog database (postgres://...)")
    p.add_argument("--warehouse", required=True, help="warehouse location: file:///abs/path or /abs/path")
    p.add_argument("--catalog", default="autoloader", help="catalog name (default: autoloader)")
    p.add_argument("--table", required=True, help="namespace.table")
    p.add_argument("--filter", help="also scan with this row filter (pyiceberg syntax) and report its files and rows")
    args = p.parse_args(argv)
    try:
        out = read(args.uri, args.warehouse, args.catalog, args.table, args.filter)
    except Exception as e:  # noqa: BLE001  (one line on stderr, whatever failed)
        print(f"iceberg_read: {args.table}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
