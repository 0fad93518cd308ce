//! Timestamps: civil-date arithmetic and RFC 3339 rendering with offsets.
//!
//! Instants are kept as microseconds since the Unix epoch (UTC) together with
//! the offset they are rendered in, so the UTC date used for partitioning can
//! differ from the local date printed in the string.

use crate::rng::Rng;

const US_PER_SEC: i64 = 1_000_000;
const US_PER_DAY: i64 = 86_400 * US_PER_SEC;

/// First instant of the observation window: 2026-11-18T00:00:00Z.
const WINDOW_START_US: i64 = days_from_civil(2026, 11, 18) * US_PER_DAY;
/// The window covers 2026-11-18 .. 2026-11-21 inclusive (UTC).
const WINDOW_LEN_US: i64 = 4 * US_PER_DAY;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
pub(crate) const fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// How an offset is written: `Z` or `±HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Offset {
    /// Minutes east of UTC.
    pub(crate) minutes: i32,
    /// Written as `Z` (only meaningful when `minutes == 0`).
    pub(crate) zulu: bool,
}

const fn off(minutes: i32) -> Offset {
    Offset {
        minutes,
        zulu: false,
    }
}

/// Offsets seen in the wild, weighted: mostly Z and Central European time,
/// plus far-away zones so local and UTC dates differ near midnight.
const OFFSETS: [(Offset, u32); 12] = [
    (
        Offset {
            minutes: 0,
            zulu: true,
        },
        28,
    ),
    (off(60), 30),
    (off(0), 4),
    (off(120), 8),
    (off(-300), 6),
    (off(330), 5),
    (off(840), 3),
    (off(-660), 3),
    (off(540), 4),
    (off(-210), 2),
    (off(345), 2),
    (off(-480), 5),
];

/// An instant plus the way it is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// Microseconds since the Unix epoch, UTC.
    pub(crate) utc_us: i64,
    /// Offset used when rendering.
    pub(crate) offset: Offset,
    /// Fractional-second digits written: 0, 3 or 6.
    pub(crate) frac_digits: u8,
}

impl Stamp {
    /// A random instant inside the observation window, in a random offset.
    pub(crate) fn random(rng: &mut Rng) -> Self {
        let utc_us = WINDOW_START_US + rng.below(WINDOW_LEN_US as u64) as i64;
        let offset = rng.weighted(&OFFSETS);
        let frac_digits = rng.weighted(&[(0u8, 30), (3, 55), (6, 15)]);
        Self {
            utc_us,
            offset,
            frac_digits,
        }
    }

    /// The same rendering, `delta_us` later (negative: earlier).
    pub(crate) fn shifted(self, delta_us: i64) -> Self {
        Self {
            utc_us: self.utc_us + delta_us,
            ..self
        }
    }

    /// Whole seconds since the Unix epoch.
    pub(crate) fn epoch_secs(self) -> i64 {
        self.utc_us.div_euclid(US_PER_SEC)
    }

    /// Milliseconds since the Unix epoch (for ULID timestamps).
    pub(crate) fn epoch_millis(self) -> u64 {
        u64::try_from(self.utc_us.div_euclid(1000)).unwrap_or(0)
    }

    /// RFC 3339 text with offset, e.g. `2026-11-20T13:45:12.345+01:00`.
    pub(crate) fn render(self) -> String {
        let mut s = self.render_local();
        if self.offset.zulu {
            s.push('Z');
        } else {
            let sign = if self.offset.minutes < 0 { '-' } else { '+' };
            let abs = self.offset.minutes.unsigned_abs();
            s.push_str(&format!("{sign}{:02}:{:02}", abs / 60, abs % 60));
        }
        s
    }

    /// The local date and time without any offset (not RFC 3339).
    pub(crate) fn render_local(self) -> String {
        let local = self.utc_us + i64::from(self.offset.minutes) * 60 * US_PER_SEC;
        let (y, m, d) = civil_from_days(local.div_euclid(US_PER_DAY));
        let of_day = local.rem_euclid(US_PER_DAY);
        let secs = of_day / US_PER_SEC;
        let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
        let micros = of_day % US_PER_SEC;
        let frac = match self.frac_digits {
            3 => format!(".{:03}", micros / 1000),
            6 => format!(".{micros:06}"),
            _ => String::new(),
        };
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}{frac}")
    }

    /// `YYYY-MM-DD` of the instant in UTC.
    pub(crate) fn utc_date(self) -> String {
        let (y, m, d) = civil_from_days(self.utc_us.div_euclid(US_PER_DAY));
        format!("{y:04}-{m:02}-{d:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> i64 {
        (days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s) * US_PER_SEC
    }

    #[test]
    fn civil_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for days in -800_000..800_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn utc_date_differs_from_local_date() {
        // 2026-11-22T04:30:00Z rendered at -05:00 is still the 21st locally.
        let utc = at(2026, 11, 22, 4, 30, 0);
        let stamp = Stamp {
            utc_us: utc,
            offset: off(-300),
            frac_digits: 0,
        };
        assert_eq!(stamp.render(), "2026-11-21T23:30:00-05:00");
        assert_eq!(stamp.utc_date(), "2026-11-22");

        // 2026-11-19T11:00:00.5Z at +14:00 is already the 20th locally.
        let stamp = Stamp {
            utc_us: at(2026, 11, 19, 11, 0, 0) + 500_000,
            offset: off(840),
            frac_digits: 3,
        };
        assert_eq!(stamp.render(), "2026-11-20T01:00:00.500+14:00");
        assert_eq!(stamp.utc_date(), "2026-11-19");

        // +05:30 and -11:00 cross midnight the other way round.
        let stamp = Stamp {
            utc_us: at(2026, 11, 18, 20, 15, 7) + 123_456,
            offset: off(330),
            frac_digits: 6,
        };
        assert_eq!(stamp.render(), "2026-11-19T01:45:07.123456+05:30");
        assert_eq!(stamp.utc_date(), "2026-11-18");
        let stamp = Stamp {
            utc_us: at(2026, 11, 21, 2, 0, 0),
            offset: off(-660),
            frac_digits: 0,
        };
        assert_eq!(stamp.render(), "2026-11-20T15:00:00-11:00");
        assert_eq!(stamp.utc_date(), "2026-11-21");

        let stamp = Stamp {
            utc_us: at(2026, 11, 20, 23, 59, 59),
            offset: Offset {
                minutes: 0,
                zulu: true,
            },
            frac_digits: 0,
        };
        assert_eq!(stamp.render(), "2026-11-20T23:59:59Z");
        assert_eq!(stamp.render_local(), "2026-11-20T23:59:59");
        assert_eq!(stamp.utc_date(), "2026-11-20");
        assert_eq!(
            stamp.epoch_secs(),
            at(2026, 11, 20, 23, 59, 59) / US_PER_SEC
        );
    }

    #[test]
    fn random_stamps_stay_in_window() {
        let mut rng = Rng::new(9);
        for _ in 0..10_000 {
            let date = Stamp::random(&mut rng).utc_date();
            assert!(
                ("2026-11-18".."2026-11-22").contains(&date.as_str()),
                "{date}"
            );
        }
    }
}
