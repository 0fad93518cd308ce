"""Utility of devices/ against the truth of the generated input.

Usage: delinking.py INPUT.ndjson DATA_DIR

Prints, per analysts' question, the largest and median relative error over
its groups, and how many groups are more than 2 % off; then the devices/
rows per profile level.
"""

import collections
import datetime
import json
import sys

import duckdb


def truth(path):
    seen = set()
    figures = {name: collections.Counter() for name in ("energy", "faults", "sessions")}
    status, online = collections.Counter(), collections.Counter()
    for line in open(path, encoding="utf-8"):
        o = json.loads(line)
        oid = o["observation_id"].lower()
        if oid in seen:
            continue
        seen.add(oid)
        at = datetime.datetime.fromisoformat(o["observed_at"].replace("Z", "+00:00"))
        day = at.astimezone(datetime.timezone.utc).date().isoformat()
        inst = o.get("installation") or {}
        kind = o["kind"]
        if kind == "session_stop":
            energy = (o.get("session") or {}).get("energy_wh") or 0
            figures["energy"][(day, inst.get("country"))] += energy
        elif kind == "fault":
            figures["faults"][(day, o["charger"].get("firmware"))] += 1
        elif kind == "session_start":
            figures["sessions"][(day, inst.get("property_type"))] += 1
        elif kind == "status" and (o.get("status") or {}).get("state"):
            status[day] += 1
            online[day] += o["status"]["state"] not in ("offline", "faulted")
    return figures, {day: online[day] / status[day] for day in status}


QUERIES = {
    "energy": ("country", "sum(session_energy_wh)", "kind = 'session_stop'"),
    "faults": ("charger_firmware", "count(*)", "kind = 'fault'"),
    "sessions": ("property_type", "count(*)", "kind = 'session_start'"),
}


def report(name, want, got):
    errors = sorted(abs(got.get(key, 0) - value) / value for key, value in want.items() if value)
    print(
        f"  {name:<28} groups {len(errors):>3}  max {100 * errors[-1]:6.2f} %"
        f"  median {100 * errors[len(errors) // 2]:6.2f} %  over 2 %: {sum(e > 0.02 for e in errors)}"
    )


def main(path, data):
    figures, uptime = truth(path)
    con = duckdb.connect()
    con.execute(f"create view v as select * from read_parquet('{data}/devices/**/*.parquet')")
    day = "strftime(observed_day, '%Y-%m-%d')"
    for name, (column, measure, where) in QUERIES.items():
        rows = con.execute(f"select {day}, {column}, {measure} from v where {where} group by all").fetchall()
        split = {(d, c): value for d, c, value in rows if c is not None}
        want = {key: value for key, value in figures[name].items() if key[1] is not None}
        report(f"{name} per day per {column}", want, split)
        daily = collections.Counter()
        for (d, _), value in figures[name].items():
            daily[d] += value
        total = dict(con.execute(f"select {day}, {measure} from v where {where} group by 1").fetchall())
        report(f"{name} per day", daily, total)
    got = dict(
        con.execute(
            f"select {day}, avg(case when status_state in ('offline', 'faulted') then 0.0 else 1.0 end) "
            "from v where kind = 'status' and status_state is not null group by 1"
        ).fetchall()
    )
    report("uptime per day", uptime, got)
    levels = con.execute("select profile_level, count(*) from v group by 1 order by 1").fetchall()
    total = sum(n for _, n in levels)
    print("  rows by profile level      " + ", ".join(f"{lvl}: {100 * n / total:.1f} %" for lvl, n in levels))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
