"""Three analyst questions asked of a delink data directory in DuckDB, with the
row groups each must read and its time.

Usage: analyst_queries.py DATA_DIR [RUNS]

- a subject's history: history/ rows of one account pseudonym;
- one charger's rows: devices/ rows of one charger pseudonym;
- one day's energy by country: devices/ session energy of the busiest day, by country.

The pseudonym and the day are picked from the data (the middle account and
charger in sort order, the day with most rows), so two directories written
from the same input with the same key store are asked the same questions.

"Row groups read" counts the row groups DuckDB cannot skip: those of the files
its partition filter keeps whose min/max statistics admit the value and whose
bloom filter (where written, probed with `parquet_bloom_probe`) does not rule
it out. Times are the median of RUNS (default 5) runs on a warm cache, with the
matching rows counted so every answer is checked alike.
"""

import json
import statistics
import sys
import time

import duckdb


def main():
    data, runs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5
    db = duckdb.connect()
    db.execute("SET threads = 2")
    history = f"read_parquet('{data}/history/**/*.parquet', hive_partitioning = true)"
    devices = f"read_parquet('{data}/devices/**/*.parquet', hive_partitioning = true)"
    account = middle(db, history, "account_pseudonym")
    charger = middle(db, devices, "charger_pseudonym")
    day = db.execute(
        f"SELECT date FROM {devices} GROUP BY date ORDER BY count(*) DESC, date LIMIT 1"
    ).fetchone()[0]
    questions = [
        (
            "subject_history",
            f"SELECT count(*), min(observed_at), max(observed_at) FROM {history}"
            f" WHERE account_pseudonym = '{account}'",
            row_groups_admitting(db, f"{data}/history/*/*.parquet", "account_pseudonym", account),
        ),
        (
            "charger_rows",
            f"SELECT count(*), count(DISTINCT kind) FROM {devices}"
            f" WHERE charger_pseudonym = '{charger}'",
            row_groups_admitting(db, f"{data}/devices/*/*.parquet", "charger_pseudonym", charger),
        ),
        (
            "day_energy_by_country",
            f"SELECT country, sum(session_energy_wh) FROM {devices}"
            f" WHERE date = '{day}' GROUP BY country ORDER BY country",
            row_groups(db, f"{data}/devices/date={day}/*.parquet"),
        ),
    ]
    for name, query, (read, total) in questions:
        rows = db.execute(query).fetchall()
        seconds = []
        for _ in range(runs):
            started = time.perf_counter()
            db.execute(query).fetchall()
            seconds.append(time.perf_counter() - started)
        print(
            json.dumps(
                {
                    "question": name,
                    "row_groups_read": read,
                    "row_groups_in_scope": total,
                    "median_ms": round(statistics.median(seconds) * 1000, 1),
                    "answer_rows": len(rows),
                    "first_answer": [str(value) for value in rows[0]] if rows else None,
                }
            )
        )


def middle(db, dataset, column):
    """The middle distinct non-null value of `column`, in sort order."""
    return db.execute(
        f"SELECT {column} FROM (SELECT DISTINCT {column} FROM {dataset}"
        f" WHERE {column} IS NOT NULL) ORDER BY {column}"
        f" LIMIT 1 OFFSET (SELECT count(DISTINCT {column}) // 2 FROM {dataset})"
    ).fetchone()[0]


def row_groups(db, files):
    """(row groups, row groups) of the files: a scan without a filter reads them all."""
    total = db.execute(
        f"SELECT count(DISTINCT (file_name, row_group_id)) FROM parquet_metadata('{files}')"
    ).fetchone()[0]
    return total, total


def row_groups_admitting(db, files, column, value):
    """(row groups that may hold `value` in `column`, all row groups of the files)."""
    chunks = db.execute(
        f"SELECT file_name, row_group_id, stats_min_value, stats_max_value,"
        f" bloom_filter_offset IS NOT NULL"
        f" FROM parquet_metadata('{files}') WHERE path_in_schema = '{column}'"
    ).fetchall()
    probes = {}
    if any(has_bloom for *_, has_bloom in chunks):
        for file_name, group, excluded in db.execute(
            f"SELECT file_name, row_group_id, bloom_filter_excludes"
            f" FROM parquet_bloom_probe('{files}', '{column}', '{value}')"
        ).fetchall():
            probes[(file_name, group)] = excluded
    read = sum(
        1
        for file_name, group, low, high, _ in chunks
        if (low is None or low <= value)
        and (high is None or value <= high)
        and not probes.get((file_name, group), False)
    )
    return read, len(chunks)


if __name__ == "__main__":
    main()
