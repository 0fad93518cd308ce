//! Continuity of a lifetime counter across key changes: when a charger's
//! pseudonym changes (a new device epoch, or a new key after erasure), does
//! its new pseudonym's first meter reading continue the old one's last?

use std::collections::HashMap;

use anyhow::Result;
use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_schema::DataType;

use crate::table::Table;

/// The counter of one pseudonym: first and last reading, with their times.
#[derive(Clone, Copy)]
struct Span {
    first_at: i64,
    first: f64,
    last_at: i64,
    last: f64,
}

/// Counts pseudonyms (with readings) and those whose first reading has a
/// clear nearest predecessor: another pseudonym whose last reading, taken
/// earlier, lies at most `max_gap_wh` below it and at least twice as close
/// than any other's. `None` when `devices/` has no counter column.
pub(crate) fn continuity(
    devices: &Table,
    chargers: &[String],
    max_gap_wh: f64,
) -> Result<Option<(usize, usize)>> {
    let (Some(counter), Some(time)) = (
        devices
            .column("meter.energy_total_wh")
            .filter(|c| !c.is_pseudonym()),
        devices.column("observed_at"),
    ) else {
        return Ok(None);
    };
    let readings = arrow_cast::cast(&counter.values, &DataType::Float64)?;
    let readings = readings.as_primitive::<Float64Type>();
    let times = arrow_cast::cast(&time.values, &DataType::Int64)?;
    let times = times.as_primitive::<Int64Type>();
    let mut spans: HashMap<&str, Span> = HashMap::new();
    for (row, charger) in chargers.iter().enumerate().take(devices.rows) {
        if readings.is_null(row) || times.is_null(row) {
            continue;
        }
        let (reading, at) = (readings.value(row), times.value(row));
        let span = spans.entry(charger).or_insert(Span {
            first_at: at,
            first: reading,
            last_at: at,
            last: reading,
        });
        if at < span.first_at {
            span.first_at = at;
            span.first = reading;
        }
        if at > span.last_at {
            span.last_at = at;
            span.last = reading;
        }
    }
    let spans: Vec<(&str, Span)> = spans.into_iter().collect();
    let mut by_last: Vec<(&str, Span)> = spans.clone();
    by_last.sort_by(|a, b| a.1.last.total_cmp(&b.1.last));
    let mut linked = 0;
    for (pseudonym, span) in &spans {
        let low = by_last.partition_point(|(_, s)| s.last < span.first - max_gap_wh);
        let high = by_last.partition_point(|(_, s)| s.last <= span.first);
        let mut gaps: Vec<f64> = by_last[low..high]
            .iter()
            .filter(|(other, s)| other != pseudonym && s.last_at <= span.first_at)
            .map(|(_, s)| span.first - s.last)
            .collect();
        gaps.sort_by(f64::total_cmp);
        // A clear nearest predecessor: the attacker's best guess, and a good one.
        let clear = match gaps.as_slice() {
            [] => false,
            [_] => true,
            [nearest, next, ..] => *next >= 2.0 * nearest + 1.0,
        };
        if clear {
            linked += 1;
        }
    }
    Ok(Some((spans.len(), linked)))
}
