//! Generalisation: coarser values that still answer the analyst's question.

use delink_policy::TimeUnit;

/// Floors a number to a multiple of `grid`, removing float noise from the result.
pub(crate) fn floor_to_grid(value: f64, grid: f64) -> f64 {
    let snapped = (value / grid).floor() * grid;
    (snapped * 1e9).round() / 1e9
}

/// Truncates UTC microseconds to the start of `unit`.
pub(crate) fn truncate_micros(micros: i64, unit: TimeUnit) -> i64 {
    let step = unit.micros();
    micros.div_euclid(step) * step
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn spec_example_location_lands_on_its_cell() {
        assert_eq!(floor_to_grid(58.970123, 0.01), 58.97);
        assert_eq!(floor_to_grid(5.733145, 0.1), 5.7);
        assert_eq!(floor_to_grid(-0.005, 0.01), -0.01);
    }

    proptest! {
        #[test]
        fn grid_is_monotone_and_close(a in -180.0f64..180.0, b in -180.0f64..180.0) {
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(floor_to_grid(low, 0.01) <= floor_to_grid(high, 0.01));
            prop_assert!((a - floor_to_grid(a, 0.01)).abs() < 0.0100001);
        }

        #[test]
        fn truncation_is_monotone(a in any::<i32>(), b in any::<i32>()) {
            let (low, high) = (i64::from(a.min(b)) * 1000, i64::from(a.max(b)) * 1000);
            prop_assert!(truncate_micros(low, TimeUnit::Minute) <= truncate_micros(high, TimeUnit::Minute));
            prop_assert!(truncate_micros(low, TimeUnit::Hour) <= low);
        }
    }
}
