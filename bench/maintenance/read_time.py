"""Times how long pyiceberg takes to read a whole table (plan + to_arrow), as a reader of the
table would: prints one JSON object with the median of `repeats` reads, the rows, data files and
manifests of the current snapshot.

    read_time.py <database url> <warehouse> <table> <repeats>
"""
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "py"))
from iceberg_read import CATALOG_SCHEMA, sqlalchemy_url, warehouse_uri  # noqa: E402


def main() -> None:
    from pyiceberg.catalog.sql import SqlCatalog

    uri, warehouse, name, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    catalog = SqlCatalog("autoloader", uri=sqlalchemy_url(uri), warehouse=warehouse_uri(warehouse),
                         init_catalog_tables="false")
    times, plan_times, rows = [], [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        table = catalog.load_table(name)  # a reader starts from the catalog every time
        scan = table.scan()
        tasks = list(scan.plan_files())
        planned = time.perf_counter()
        rows = scan.to_arrow().num_rows
        times.append(time.perf_counter() - start)
        plan_times.append(planned - start)
    snapshot = table.current_snapshot()
    manifests = snapshot.manifests(table.io) if snapshot is not None else []
    print(json.dumps({
        "schema": CATALOG_SCHEMA,
        "rows": rows,
        "data_files": len(tasks),
        "manifests": len(manifests),
        "snapshots": len(table.metadata.snapshots),
        "read_s_median": statistics.median(times),
        "read_s_all": times,
        "plan_s_median": statistics.median(plan_times),
    }))


if __name__ == "__main__":
    main()
