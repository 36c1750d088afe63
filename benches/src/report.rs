//! The comparison runner's output: one JSON object per line per case, and the statistics
//! its figures are made of.
//!
//! A line reads
//!
//! ```text
//! {"case":"noop_throughput_tokio","subject":"errand-tokio","baseline":"tokio::spawn",
//!  "unit":"tasks/s","subject_value":1.2e6,"baseline_value":1.0e6,"ratio":1.2,
//!  "higher_is_better":true}
//! ```
//!
//! (on one line). `ratio` is `subject_value / baseline_value`, `null` when the baseline is
//! zero; `higher_is_better` says which way a ratio is good.

use serde::{Deserialize, Serialize};

/// What a case's values count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Unit {
    /// Tasks completed per second.
    #[serde(rename = "tasks/s")]
    TasksPerSecond,
    /// Nanoseconds (of wall time, or of CPU time where the case says so).
    #[serde(rename = "ns")]
    Nanoseconds,
    /// Bytes of heap.
    #[serde(rename = "bytes")]
    Bytes,
    /// Heap allocations (calls to the allocator).
    #[serde(rename = "allocs")]
    Allocations,
    /// A number of things (jobs, say), as the case says.
    #[serde(rename = "count")]
    Count,
}

impl Unit {
    /// The unit as written in a line (`"tasks/s"`, `"ns"`, `"bytes"`, `"allocs"`,
    /// `"count"`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::TasksPerSecond => "tasks/s",
            Unit::Nanoseconds => "ns",
            Unit::Bytes => "bytes",
            Unit::Allocations => "allocs",
            Unit::Count => "count",
        }
    }
}

/// One case's result: the subject's and the baseline's medians, side by side.
///
/// # Examples
///
/// ```
/// use errand_benches::report::{Line, Unit};
///
/// let line = Line::new("noop_throughput_tokio", "errand-tokio", "tokio::spawn",
///                      Unit::TasksPerSecond, 3.0e6, 2.0e6, true);
/// assert_eq!(line.ratio, Some(1.5));
/// let text = line.to_json();
/// assert!(!text.contains('\n'));
/// assert_eq!(Line::parse(&text).unwrap(), line);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    /// The case's name, e.g. `noop_throughput_tokio`.
    pub case: String,
    /// What is measured: errand, on some adapter, in some setting.
    pub subject: String,
    /// What it is measured against, in the same run.
    pub baseline: String,
    /// What the two values count.
    pub unit: Unit,
    /// The subject's figure (a median over the rounds unless the case says otherwise).
    pub subject_value: f64,
    /// The baseline's figure, measured the same way.
    pub baseline_value: f64,
    /// `subject_value / baseline_value`; `None` (`null`) when the baseline is zero.
    pub ratio: Option<f64>,
    /// Whether a higher value is the better one (throughput) or a lower one (latency,
    /// bytes, allocations).
    pub higher_is_better: bool,
}

impl Line {
    /// A line, its ratio computed from the two values.
    #[must_use]
    pub fn new(
        case: impl Into<String>,
        subject: impl Into<String>,
        baseline: impl Into<String>,
        unit: Unit,
        subject_value: f64,
        baseline_value: f64,
        higher_is_better: bool,
    ) -> Self {
        let ratio = (baseline_value != 0.0).then(|| subject_value / baseline_value);
        Self {
            case: case.into(),
            subject: subject.into(),
            baseline: baseline.into(),
            unit,
            subject_value,
            baseline_value,
            ratio: ratio.filter(|r| r.is_finite()),
            higher_is_better,
        }
    }

    /// The line as one JSON object, without a trailing newline.
    ///
    /// # Panics
    ///
    /// If a value is not finite (JSON has no infinities); the runner never makes one.
    #[must_use]
    pub fn to_json(&self) -> String {
        assert!(
            self.subject_value.is_finite() && self.baseline_value.is_finite(),
            "case {}: values must be finite ({} vs {})",
            self.case,
            self.subject_value,
            self.baseline_value
        );
        serde_json::to_string(self).expect("a Line always serializes")
    }

    /// Parses one line written by [`to_json`](Self::to_json).
    ///
    /// # Errors
    ///
    /// When the text is not such an object (a field missing, unknown or mistyped).
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Parses a JSON-lines file's text: one line per non-blank line.
    ///
    /// # Errors
    ///
    /// The first line that does not parse, with its 1-based line number.
    pub fn parse_all(text: &str) -> Result<Vec<Self>, String> {
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| Self::parse(line).map_err(|e| format!("line {}: {e}", i + 1)))
            .collect()
    }

    /// Whether the subject did at least as well as the baseline (`None` without a ratio).
    #[must_use]
    pub fn subject_wins(&self) -> Option<bool> {
        let ratio = self.ratio?;
        Some(if self.higher_is_better {
            ratio >= 1.0
        } else {
            ratio <= 1.0
        })
    }
}

/// The median of `values` (the mean of the middle two for an even count); `NaN` when
/// empty.
///
/// # Examples
///
/// ```
/// assert_eq!(errand_benches::report::median(&[3.0, 1.0, 2.0]), 2.0);
/// assert_eq!(errand_benches::report::median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
/// ```
#[must_use]
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The `p`-th percentile (0 < `p` ≤ 100) of `values` by nearest rank: the smallest value
/// with at least `p` % of the values at or below it. `NaN` when empty.
///
/// # Examples
///
/// ```
/// use errand_benches::report::percentile;
///
/// let values: Vec<f64> = (1..=100).map(f64::from).collect();
/// assert_eq!(percentile(&values, 50.0), 50.0);
/// assert_eq!(percentile(&values, 99.0), 99.0);
/// assert_eq!(percentile(&[5.0, 1.0], 99.0), 5.0);
/// ```
#[must_use]
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_is_null_against_a_zero_baseline() {
        let line = Line::new("c", "s", "b", Unit::Allocations, 1.0, 0.0, false);
        assert_eq!(line.ratio, None);
        let json: serde_json::Value = serde_json::from_str(&line.to_json()).unwrap();
        assert!(json["ratio"].is_null());
        assert_eq!(Line::parse(&line.to_json()).unwrap(), line);
    }

    #[test]
    fn percentile_of_one_value_is_that_value() {
        assert_eq!(percentile(&[7.0], 50.0), 7.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn subject_wins_follows_the_direction() {
        let faster = Line::new("c", "s", "b", Unit::TasksPerSecond, 2.0, 1.0, true);
        let slower = Line::new("c", "s", "b", Unit::Nanoseconds, 2.0, 1.0, false);
        assert_eq!(faster.subject_wins(), Some(true));
        assert_eq!(slower.subject_wins(), Some(false));
    }
}
