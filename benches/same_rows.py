"""Checks that two delink data directories hold the same rows, whatever their
order and file layout: for history/ and devices/, every row of one is in the
other as often (DuckDB `EXCEPT ALL`, both ways, partition column included).

Usage: same_rows.py DATA_DIR_A DATA_DIR_B   (exit 1 and the counts when they differ)

Run both with the same key store (copy one run's keys/ into the other's fresh
data directory first): pseudonyms are only comparable under the same keys.
"""

import sys

import duckdb


def main():
    a, b = sys.argv[1], sys.argv[2]
    db = duckdb.connect()
    same = True
    for dataset in ("history", "devices"):
        scan = lambda root: (  # noqa: E731
            f"read_parquet('{root}/{dataset}/**/*.parquet', hive_partitioning = true)"
        )
        rows_a, rows_b = (db.execute(f"SELECT count(*) FROM {scan(root)}").fetchone()[0] for root in (a, b))
        only_a, only_b = (
            db.execute(
                f"SELECT count(*) FROM (SELECT * FROM {scan(x)} EXCEPT ALL SELECT * FROM {scan(y)})"
            ).fetchone()[0]
            for x, y in ((a, b), (b, a))
        )
        print(f"{dataset}: {rows_a} and {rows_b} rows; {only_a} only in the first, {only_b} only in the second")
        same = same and rows_a == rows_b and only_a == 0 and only_b == 0
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
