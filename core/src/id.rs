//! Task ids: a slot index plus a generation, printed as `t-<index>-<generation>`.
//!
//! The public contract (the text grammar included) is on [`TaskId`]; this module only adds
//! the parser.

use core::fmt;
use core::str::FromStr;

/// The prefix of a task id's text form.
const PREFIX: &str = "t-";

/// Identifies one use of one slot: a slot index and the slot's generation at that use.
///
/// The index says which slot of a [`SlotTable`](crate::SlotTable); the generation says which
/// use of it. When a slot is released and handed out again its generation changes, so an id
/// kept from an earlier use no longer matches and never reaches the new task. Ids compare
/// (and sort) by index, then generation.
///
/// # Text form
///
/// An id prints as `t-<index>-<generation>`, both numbers in decimal, for example `t-3-17`.
/// [`FromStr`] accepts exactly the strings [`Display`](fmt::Display) produces and nothing
/// else, so printing and parsing round-trip for every id:
///
/// - the prefix is the two bytes `t-` (lowercase);
/// - each number is one or more ASCII digits, with no sign, no leading zero (except the
///   number `0` itself) and a value that fits a `u32`;
/// - the two numbers are separated by one `-`, and nothing follows the generation (no
///   whitespace either).
///
/// Anything else is a [`ParseTaskIdError`] saying what was wrong and at which byte offset;
/// parsing never panics, whatever the input. With the `serde` feature an id serializes as
/// this string (and deserializes from it).
///
/// # Examples
///
/// ```
/// use errand_core::TaskId;
///
/// let id = TaskId::new(3, 17);
/// assert_eq!(id.index(), 3);
/// assert_eq!(id.generation(), 17);
/// assert_eq!(id.to_string(), "t-3-17");
/// assert_eq!("t-3-17".parse::<TaskId>(), Ok(id));
///
/// // Malformed text is an error value, never a panic.
/// let err = "t-3-017".parse::<TaskId>().unwrap_err();
/// assert_eq!(err.to_string(), "invalid task id: leading zero in the generation at byte 4");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct TaskId {
    index: u32,
    generation: u32,
}

impl TaskId {
    /// Builds the id of use `generation` of slot `index`.
    #[inline]
    #[must_use]
    pub const fn new(index: u32, generation: u32) -> Self {
        Self { index, generation }
    }

    /// The slot index.
    #[inline]
    #[must_use]
    pub const fn index(self) -> u32 {
        self.index
    }

    /// The slot's generation at this use.
    #[inline]
    #[must_use]
    pub const fn generation(self) -> u32 {
        self.generation
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}-{}", self.index, self.generation)
    }
}

/// What was wrong with a string that did not parse as a [`TaskId`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum ParseTaskIdErrorKind {
    /// The string was empty.
    Empty,
    /// The string did not start with `t-`.
    BadPrefix,
    /// A number (or the separator between them) was missing.
    MissingPart,
    /// A byte other than an ASCII digit where a digit was expected.
    NonDigit,
    /// A number had a leading zero (only `0` itself may start with `0`).
    LeadingZero,
    /// A number did not fit a `u32`.
    Overflow,
    /// Text followed the generation.
    TrailingText,
}

/// Which number of the id a parse error is about.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Part {
    Index,
    Generation,
    Whole,
}

/// The error [`TaskId::from_str`](FromStr::from_str) returns for malformed text.
///
/// It says what was wrong ([`kind`](Self::kind)) and the byte offset where the problem was
/// found ([`offset`](Self::offset)).
///
/// # Examples
///
/// ```
/// use errand_core::{ParseTaskIdErrorKind, TaskId};
///
/// let err = "t-4294967296-0".parse::<TaskId>().unwrap_err();
/// assert_eq!(err.kind(), ParseTaskIdErrorKind::Overflow);
/// assert_eq!(err.to_string(), "invalid task id: the index overflows u32 at byte 2");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub struct ParseTaskIdError {
    kind: ParseTaskIdErrorKind,
    part: Part,
    offset: usize,
}

impl ParseTaskIdError {
    /// What was wrong.
    #[inline]
    #[must_use]
    pub fn kind(&self) -> ParseTaskIdErrorKind {
        self.kind
    }

    /// The byte offset in the input where the problem was found.
    #[inline]
    #[must_use]
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for ParseTaskIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let part = match self.part {
            Part::Index => "the index",
            Part::Generation => "the generation",
            Part::Whole => "the id",
        };
        let offset = self.offset;
        f.write_str("invalid task id: ")?;
        match self.kind {
            ParseTaskIdErrorKind::Empty => f.write_str("empty string"),
            ParseTaskIdErrorKind::BadPrefix => write!(f, "expected prefix `{PREFIX}` at byte 0"),
            ParseTaskIdErrorKind::MissingPart => write!(f, "{part} is missing at byte {offset}"),
            ParseTaskIdErrorKind::NonDigit => {
                write!(f, "non-digit in {part} at byte {offset}")
            }
            ParseTaskIdErrorKind::LeadingZero => {
                write!(f, "leading zero in {part} at byte {offset}")
            }
            ParseTaskIdErrorKind::Overflow => write!(f, "{part} overflows u32 at byte {offset}"),
            ParseTaskIdErrorKind::TrailingText => {
                write!(f, "trailing text after {part} at byte {offset}")
            }
        }
    }
}

impl core::error::Error for ParseTaskIdError {}

/// Parses one canonical decimal `u32` at the start of `bytes[start..]`, stopping at the
/// first non-digit. Returns the value and the offset just past its digits.
fn parse_number(bytes: &[u8], start: usize, part: Part) -> Result<(u32, usize), ParseTaskIdError> {
    let error = |kind, offset| ParseTaskIdError { kind, part, offset };
    let mut end = start;
    let mut value: u32 = 0;
    while let Some(&byte) = bytes.get(end) {
        if !byte.is_ascii_digit() {
            break;
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u32::from(byte - b'0')))
            .ok_or(error(ParseTaskIdErrorKind::Overflow, start))?;
        end += 1;
    }
    match bytes.get(start) {
        None => Err(error(ParseTaskIdErrorKind::MissingPart, start)),
        Some(byte) if !byte.is_ascii_digit() => {
            // A separator where the number should start means the number is missing.
            let kind = if *byte == b'-' {
                ParseTaskIdErrorKind::MissingPart
            } else {
                ParseTaskIdErrorKind::NonDigit
            };
            Err(error(kind, start))
        }
        Some(b'0') if end - start > 1 => Err(error(ParseTaskIdErrorKind::LeadingZero, start)),
        Some(_) => Ok((value, end)),
    }
}

impl FromStr for TaskId {
    type Err = ParseTaskIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = text.as_bytes();
        let whole = |kind, offset| ParseTaskIdError {
            kind,
            part: Part::Whole,
            offset,
        };
        if bytes.is_empty() {
            return Err(whole(ParseTaskIdErrorKind::Empty, 0));
        }
        if !bytes.starts_with(PREFIX.as_bytes()) {
            return Err(whole(ParseTaskIdErrorKind::BadPrefix, 0));
        }
        let (index, end) = parse_number(bytes, PREFIX.len(), Part::Index)?;
        match bytes.get(end) {
            Some(b'-') => {}
            None => {
                return Err(ParseTaskIdError {
                    kind: ParseTaskIdErrorKind::MissingPart,
                    part: Part::Generation,
                    offset: end,
                });
            }
            Some(_) => {
                return Err(ParseTaskIdError {
                    kind: ParseTaskIdErrorKind::NonDigit,
                    part: Part::Index,
                    offset: end,
                });
            }
        }
        let (generation, end) = parse_number(bytes, end + 1, Part::Generation)?;
        if end != bytes.len() {
            return Err(ParseTaskIdError {
                kind: ParseTaskIdErrorKind::TrailingText,
                part: Part::Generation,
                offset: end,
            });
        }
        Ok(Self { index, generation })
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for TaskId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for TaskId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Accepts any string (borrowed or not) and parses it.
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = TaskId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a task id such as `t-3-17`")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<TaskId, E> {
                text.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    fn kind(text: &str) -> ParseTaskIdErrorKind {
        text.parse::<TaskId>().unwrap_err().kind()
    }

    #[test]
    fn prints_and_parses_extremes() {
        for id in [
            TaskId::new(0, 0),
            TaskId::new(u32::MAX, 0),
            TaskId::new(0, u32::MAX),
            TaskId::new(u32::MAX, u32::MAX),
            TaskId::new(10, 100),
        ] {
            assert_eq!(id.to_string().parse::<TaskId>(), Ok(id));
        }
        assert_eq!(TaskId::new(u32::MAX, 7).to_string(), "t-4294967295-7");
    }

    #[test]
    fn rejects_each_kind_of_malformed_text() {
        use ParseTaskIdErrorKind::*;
        assert_eq!(kind(""), Empty);
        assert_eq!(kind("x-1-2"), BadPrefix);
        assert_eq!(kind("T-1-2"), BadPrefix);
        assert_eq!(kind("t"), BadPrefix);
        assert_eq!(kind(" t-1-2"), BadPrefix);
        assert_eq!(kind("t-"), MissingPart);
        assert_eq!(kind("t--2"), MissingPart);
        assert_eq!(kind("t-1"), MissingPart);
        assert_eq!(kind("t-1-"), MissingPart);
        assert_eq!(kind("t-1--"), MissingPart);
        assert_eq!(kind("t-+1-2"), NonDigit);
        assert_eq!(kind("t-1x-2"), NonDigit);
        assert_eq!(kind("t-1-x"), NonDigit);
        assert_eq!(kind("t-01-2"), LeadingZero);
        assert_eq!(kind("t-1-00"), LeadingZero);
        assert_eq!(kind("t-4294967296-2"), Overflow);
        assert_eq!(kind("t-1-99999999999999999999"), Overflow);
        assert_eq!(kind("t-1-2 "), TrailingText);
        assert_eq!(kind("t-1-2-3"), TrailingText);
        assert_eq!(kind("t-1-2é"), TrailingText);
    }

    #[test]
    fn messages_name_the_problem_and_offset() {
        let message = |text: &str| text.parse::<TaskId>().unwrap_err().to_string();
        assert_eq!(message(""), "invalid task id: empty string");
        assert_eq!(
            message("id-1-2"),
            "invalid task id: expected prefix `t-` at byte 0"
        );
        assert_eq!(
            message("t-1"),
            "invalid task id: the generation is missing at byte 3"
        );
        assert_eq!(
            message("t-1a-2"),
            "invalid task id: non-digit in the index at byte 3"
        );
        assert_eq!(
            message("t-1-2x"),
            "invalid task id: trailing text after the generation at byte 5"
        );
        let err = "t-1-2x".parse::<TaskId>().unwrap_err();
        assert_eq!(err.offset(), 5);
    }

    #[test]
    fn orders_by_index_then_generation() {
        assert!(TaskId::new(1, 9) < TaskId::new(2, 0));
        assert!(TaskId::new(2, 0) < TaskId::new(2, 1));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serializes_as_the_text_form() {
        let id = TaskId::new(5, 9);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"t-5-9\"");
        assert_eq!(serde_json::from_str::<TaskId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<TaskId>("\"t-5\"").is_err());
        assert!(serde_json::from_str::<TaskId>("17").is_err());
    }
}
