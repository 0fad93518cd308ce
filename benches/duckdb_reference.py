"""The reference job the end-to-end harness measures delink against, in DuckDB.

Usage: duckdb_reference.py INPUT.ndjson OUT_DIR

The same job as `delink run` with the shipped policy, as a general-purpose tool
does it: read the NDJSON with explicit columns, keep the valid observations,
drop replays of an observation id, replace identifiers with keyed hashes
(SHA-256 of key || value, one key per column, standing in for delink's keyed
BLAKE3 per entity), and write two zstd Parquet datasets partitioned by the UTC
date of `observed_at`: history (observations with a subject) and devices (every
valid observation, coarsened). Prints rows written, wall seconds and peak RSS
as JSON.
"""

import json
import os
import resource
import sys
import time

import duckdb

COLUMNS = {
    "schema": "VARCHAR",
    "observation_id": "VARCHAR",
    "observed_at": "VARCHAR",
    "kind": "VARCHAR",
    "charger": "STRUCT(serial VARCHAR, model VARCHAR, firmware VARCHAR,"
    " components STRUCT(kind VARCHAR, serial VARCHAR)[])",
    "installation": "STRUCT(id VARCHAR, lat DOUBLE, lon DOUBLE, country VARCHAR,"
    " property_type VARCHAR)",
    "user": "STRUCT(account_id VARCHAR, rfid VARCHAR, roles VARCHAR[])",
    "session": "STRUCT(id VARCHAR, started_at VARCHAR, ended_at VARCHAR, energy_wh DOUBLE,"
    " max_current_a DOUBLE, phases BIGINT)",
    "meter": "STRUCT(energy_total_wh DOUBLE, power_w DOUBLE, voltage_v DOUBLE[],"
    " current_a DOUBLE[])",
    "status": "STRUCT(state VARCHAR, fault_code VARCHAR, temperature_c DOUBLE)",
    "operator": "STRUCT(cpo_id VARCHAR)",
    "network": "STRUCT(signal_dbm BIGINT)",
}

KINDS = "('session_start', 'session_stop', 'meter_reading', 'status', 'fault', 'heartbeat')"


def keyed(column, value):
    """A keyed hash of `value` under the key of `column`, 32 hex characters."""
    return f"left(sha256('{column}-key' || {value}), 32)"


def main():
    source, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    started = time.monotonic()
    db = duckdb.connect()
    db.execute("SET threads = 2")
    db.execute("SET preserve_insertion_order = false")
    db.execute("SET TimeZone = 'UTC'")
    columns = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in COLUMNS.items()) + "}"
    db.execute(
        f"""
        CREATE TEMP TABLE valid AS
        SELECT *, observed_utc::DATE AS date
        FROM (
            SELECT *, TRY_CAST(observed_at AS TIMESTAMPTZ) AS observed_utc
            FROM read_ndjson('{source}', columns = {columns}, ignore_errors = true,
                             format = 'newline_delimited')
        )
        WHERE schema = 'charger.observation.v1' AND observation_id IS NOT NULL
          AND observed_utc IS NOT NULL AND kind IN {KINDS} AND charger.serial IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY lower(observation_id)) = 1
        """
    )
    history = f"""
        SELECT
            {keyed('observation', 'lower(observation_id)')} AS observation_pseudonym,
            observed_utc AS observed_at, kind,
            {keyed('charger', 'upper(charger.serial)')} AS charger_pseudonym,
            charger.model AS charger_model, charger.firmware AS charger_firmware,
            list_transform(charger.components, lambda c: c.kind) AS component_kinds,
            list_transform(charger.components, lambda c: {keyed('component', 'upper(c.serial)')})
                AS component_pseudonyms,
            {keyed('installation', 'lower(installation.id)')} AS installation_pseudonym,
            floor(installation.lat * 100) / 100 AS lat_grid,
            floor(installation.lon * 100) / 100 AS lon_grid,
            installation.country AS country, installation.property_type AS property_type,
            {keyed('account', 'lower("user".account_id)')} AS account_pseudonym,
            {keyed('rfid', 'upper("user".rfid)')} AS rfid_pseudonym,
            "user".roles AS roles,
            {keyed('session', 'lower(session.id)')} AS session_pseudonym,
            TRY_CAST(session.started_at AS TIMESTAMPTZ) AS session_started_at,
            TRY_CAST(session.ended_at AS TIMESTAMPTZ) AS session_ended_at,
            session.energy_wh AS session_energy_wh,
            session.max_current_a AS session_max_current_a, session.phases AS session_phases,
            meter.energy_total_wh AS meter_energy_total_wh, meter.power_w AS meter_power_w,
            meter.voltage_v AS meter_voltage_v, meter.current_a AS meter_current_a,
            status.state AS status_state, status.fault_code AS status_fault_code,
            status.temperature_c AS status_temperature_c,
            operator.cpo_id AS operator_cpo_id, network.signal_dbm AS network_signal_dbm,
            date
        FROM valid
        WHERE "user".account_id IS NOT NULL OR "user".rfid IS NOT NULL
    """
    devices = f"""
        SELECT
            {keyed('device', 'upper(charger.serial)')} AS charger_pseudonym,
            kind, charger.model AS charger_model, charger.firmware AS charger_firmware,
            installation.country AS country, installation.property_type AS property_type,
            session.energy_wh AS session_energy_wh, status.state AS status_state,
            status.fault_code AS status_fault_code, date
        FROM valid
    """
    rows = {}
    for name, query in (("history", history), ("devices", devices)):
        # COPY answers with the number of rows it wrote.
        rows[name] = db.execute(
            f"COPY ({query}) TO '{out}/{name}' "
            "(FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date), OVERWRITE_OR_IGNORE)"
        ).fetchone()[0]
    print(
        json.dumps(
            {
                "history_rows": rows["history"],
                "devices_rows": rows["devices"],
                "seconds": time.monotonic() - started,
                "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
