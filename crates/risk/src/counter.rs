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

/// Counts pseudonyms (with readings) and those whose first reading is
/// continued from exactly one other pseudonym's last reading, taken earlier,
/// within `tolerance_wh`. `None` when `devices/` has no counter column.
pub(crate) fn continuity(
    devices: &Table,
    chargers: &[String],
    tolerance_wh: f64,
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
        let low = by_last.partition_point(|(_, s)| s.last < span.first - tolerance_wh);
        let high = by_last.partition_point(|(_, s)| s.last <= span.first);
        let candidates = by_last[low..high]
            .iter()
            .filter(|(other, s)| other != pseudonym && s.last_at <= span.first_at)
            .count();
        if candidates == 1 {
            linked += 1;
        }
    }
    Ok(Some((spans.len(), linked)))
}
