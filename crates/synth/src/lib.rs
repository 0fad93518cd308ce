//! Deterministic synthetic charger observations (NDJSON), per
//! `spec/observation-v1.md`, for tests and benchmarks of the delink pipeline.
//!
//! A [`Generator`] yields exactly [`SynthConfig::count`] lines. The output is
//! a pure function of `(count, seed, bad_fraction)`: the PRNG is written out
//! in this crate (xoshiro256** seeded by SplitMix64) and only exact integer
//! and IEEE arithmetic is used, so the bytes never change between runs,
//! platforms or dependency upgrades.
//!
//! Valid lines follow a realistic mix: a population of chargers (about
//! `count / 200`, 50 ..= 200,000), each in one installation with one owner
//! account; commercial sites with many users; anonymous RFID cards; Sense
//! meters; timestamps in many offsets; RFID tags and e-mails in messy forms;
//! optional fields null or missing; unknown fields; and exact replays of
//! earlier lines.
//!
//! A share `bad_fraction` of lines is broken, each with exactly one defect.
//! Every line comes with a [`Truth`] saying what the generator intended, so
//! tests can compare the pipeline's verdict with it, and with the serial of
//! the charger that sent it: the Kafka record key. Broken reasons:
//!
//! | reason | defect |
//! |---|---|
//! | `not_utf8` | valid JSON, but `installation.site_name` holds invalid UTF-8 (0xFF, Latin-1, cut-short or overlong sequence, lone continuation byte, CESU-8 surrogate) |
//! | `not_json` | an observation cut off at 20-90% of its length (valid UTF-8, never blank), or garbage text such as `<html>oops` |
//! | `too_large` | longer than 65,536 bytes: a valid observation plus an extra string field of 70-300 KB (about 1 in 20: 1-2 MB) |
//! | `missing_field` | `schema`, `observation_id`, `observed_at`, `kind`, `charger` or `charger.serial` absent or `null` |
//! | `wrong_type` | `observed_at` a number, `charger` a string, `session.energy_wh` a string, `session.phases` a string, `user.roles` a string, `meter.voltage_v` a number, or the whole line an array (`[{..}]`), a string (the object double-encoded) or a number |
//! | `bad_timestamp` | `observed_at` (or `session.started_at`) a string that is not RFC 3339 with offset |
//! | `unknown_schema` | `schema` a string other than `charger.observation.v1` |
//! | `unknown_kind` | `kind` a string outside the contract's six kinds |
//! | `out_of_range` | `session.phases` 0 or 4..=9, `installation.lat` beyond ±90, `installation.lon` beyond ±180, or `meter.voltage_v` empty or with 4..=6 entries |
//! | `bad_identifier` | `observation_id` or `charger.serial` empty or 129..=300 chars |

mod broken;
mod ids;
mod json;
mod observation;
mod population;
mod rng;
mod time;

use std::io::Write;

use population::Population;
use rng::Rng;

/// What to generate. The output is a pure function of these values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthConfig {
    /// Number of lines to generate.
    pub count: u64,
    /// PRNG seed.
    pub seed: u64,
    /// Share of lines (0.0 ..= 1.0) that are broken; out-of-range or NaN
    /// values are clamped (NaN counts as 0.0).
    pub bad_fraction: f64,
    /// Chargers in the fleet; 0 sizes it to the count (`count / 200`, at least 50).
    pub chargers: usize,
}

impl SynthConfig {
    /// `count` lines from `seed`, all valid (`bad_fraction` 0.0).
    pub fn new(count: u64, seed: u64) -> Self {
        Self {
            count,
            seed,
            bad_fraction: 0.0,
            chargers: 0,
        }
    }
}

/// What the generator intended a line to be; tests compare the pipeline's verdict with it.
#[derive(Debug, Clone, PartialEq)]
pub enum Truth {
    /// A line that satisfies the contract.
    Valid {
        /// The line's `observation_id`, exactly as written.
        observation_id: String,
        /// A `user` object is present with an `account_id` or an `rfid`.
        has_subject: bool,
        /// `YYYY-MM-DD` of `observed_at` in UTC.
        utc_date: String,
        /// The line is an exact byte copy of an earlier valid line.
        replay: bool,
    },
    /// A line with exactly one defect.
    Broken {
        /// The reason code the decoder should report (see the crate docs).
        reason: &'static str,
    },
}

/// One generated line, the charger it comes from, and what it was meant to be.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The line, without a trailing newline.
    pub line: Vec<u8>,
    /// Serial of the charger that sent the line, as its producer knows it: the
    /// Kafka record key (records are keyed by charger serial). Set for broken
    /// lines too, even when the defect removed or mangled `charger.serial`;
    /// `None` only for garbage text, which no charger's observation underlies.
    pub serial: Option<String>,
    /// What the generator intended.
    pub truth: Truth,
}

/// How many recent valid lines are kept as replay candidates.
const REPLAY_POOL: usize = 256;

/// Yields exactly `count` [`Generated`] lines, deterministically.
#[derive(Debug, Clone)]
pub struct Generator {
    remaining: u64,
    bad_fraction: f64,
    rng: Rng,
    population: Population,
    /// Recent original valid lines, replayed byte for byte now and then.
    recent: Vec<Generated>,
}

impl Generator {
    /// A generator for `config`; builds the population up front.
    pub fn new(config: SynthConfig) -> Self {
        let mut master = Rng::new(config.seed);
        let mut population_rng = master.fork();
        let rng = master.fork();
        let population = Population::new(
            &mut population_rng,
            match config.chargers {
                0 => population::charger_count_for(config.count),
                chargers => chargers.min(population::MAX_CHARGERS),
            },
        );
        let bad_fraction = if config.bad_fraction.is_nan() {
            0.0
        } else {
            config.bad_fraction.clamp(0.0, 1.0)
        };
        Self {
            remaining: config.count,
            bad_fraction,
            rng,
            population,
            recent: Vec::with_capacity(REPLAY_POOL),
        }
    }

    fn valid(&mut self) -> Generated {
        let mut built = observation::build(&mut self.rng, &self.population, Default::default());
        if self.rng.per_mille(30) {
            observation::add_unknown_field(&mut self.rng, &mut built);
        }
        let generated = Generated {
            line: built.obj.to_bytes(),
            serial: Some(built.charger.serial.clone()),
            truth: Truth::Valid {
                observation_id: built.observation_id,
                has_subject: built.has_subject,
                utc_date: built.stamp.utc_date(),
                replay: false,
            },
        };
        // Keep a sample of recent lines as replay candidates.
        if self.recent.len() < REPLAY_POOL {
            self.recent.push(generated.clone());
        } else if self.rng.per_mille(125) {
            let slot = self.rng.index(REPLAY_POOL);
            self.recent[slot] = generated.clone();
        }
        generated
    }

    fn replay(&mut self) -> Option<Generated> {
        if self.recent.is_empty() {
            return None;
        }
        let mut replayed = self.recent[self.rng.index(self.recent.len())].clone();
        replayed.truth = match replayed.truth {
            Truth::Valid {
                observation_id,
                has_subject,
                utc_date,
                ..
            } => Truth::Valid {
                observation_id,
                has_subject,
                utc_date,
                replay: true,
            },
            broken @ Truth::Broken { .. } => broken,
        };
        Some(replayed)
    }
}

impl Iterator for Generator {
    type Item = Generated;

    fn next(&mut self) -> Option<Generated> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        if self.rng.chance(self.bad_fraction) {
            let (damaged, reason) = broken::generate(&mut self.rng, &self.population);
            return Some(Generated {
                line: damaged.line,
                serial: damaged.serial,
                truth: Truth::Broken { reason },
            });
        }
        if self.rng.per_mille(10)
            && let Some(replayed) = self.replay()
        {
            return Some(replayed);
        }
        Some(self.valid())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        (n, usize::try_from(self.remaining).ok())
    }
}

impl std::iter::FusedIterator for Generator {}

/// Totals of one [`write_ndjson`] run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SynthSummary {
    /// Lines written (always `count`).
    pub lines: u64,
    /// Lines meant to be valid, replays included.
    pub valid: u64,
    /// Lines with a defect.
    pub broken: u64,
    /// Bytes written, newlines included.
    pub bytes: u64,
}

impl SynthSummary {
    /// Counts one line as [`write_ndjson`] writes it (its newline included).
    pub fn add(&mut self, generated: &Generated) {
        self.lines += 1;
        match generated.truth {
            Truth::Valid { .. } => self.valid += 1,
            Truth::Broken { .. } => self.broken += 1,
        }
        self.bytes += generated.line.len() as u64 + 1;
    }
}

/// Writes `count` lines, each followed by b'\n'.
///
/// Output is buffered internally in 1 MiB blocks, so `out` need not be
/// buffered. The writer is flushed at the end.
pub fn write_ndjson(config: SynthConfig, out: &mut impl Write) -> std::io::Result<SynthSummary> {
    const BLOCK: usize = 1 << 20;
    let mut summary = SynthSummary::default();
    let mut buf = Vec::with_capacity(BLOCK + 4096);
    for generated in Generator::new(config) {
        summary.add(&generated);
        if generated.line.len() >= BLOCK {
            out.write_all(&buf)?;
            buf.clear();
            out.write_all(&generated.line)?;
            out.write_all(b"\n")?;
            continue;
        }
        buf.extend_from_slice(&generated.line);
        buf.push(b'\n');
        if buf.len() >= BLOCK {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    out.flush()?;
    Ok(summary)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the point of a failing test
mod tests;
