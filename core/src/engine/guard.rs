//! The one guard around user code.
//!
//! The engine calls into user code in many places: a task's closure or future (run,
//! polled, built, dropped), its value (cloned into the result store, dropped when nobody
//! takes it), its error (converted, formatted for snapshots, dropped), its error handler.
//! Every such call goes through [`run`] or [`drop`] here, so a panic in any of them is
//! caught with its message and turned into something the engine records (the attempt
//! failed, or a note beside a result), and the thread that made the call, a worker or the
//! timer driver or a caller of `cancel`, lives on. The engine never formats user values
//! with `Debug`.

use std::any::Any;
use std::boxed::Box;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::string::String;

/// A panic caught in user code: its message (a `&str` or `String` payload; any other
/// payload reads "a non-string panic payload").
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Caught(String);

impl Caught {
    /// The message of `payload`, which is then dropped, itself under the guard: a payload
    /// whose drop panics yields another payload, dropped the same way (a chain of them is
    /// leaked after a few links rather than unwound through the engine).
    pub(crate) fn from_payload(payload: Box<dyn Any + Send>) -> Self {
        let message = if let Some(text) = payload.downcast_ref::<&str>() {
            String::from(*text)
        } else if let Some(text) = payload.downcast_ref::<String>() {
            text.clone()
        } else {
            String::from("a non-string panic payload")
        };
        let mut payload = payload;
        for _ in 0..4 {
            match catch_unwind(AssertUnwindSafe(move || core::mem::drop(payload))) {
                Ok(()) => return Self(message),
                Err(nested) => payload = nested,
            }
        }
        core::mem::forget(payload);
        Self(message)
    }

    /// The panic's message.
    pub(crate) fn message(&self) -> &str {
        &self.0
    }

    /// The message, owned.
    pub(crate) fn into_message(self) -> String {
        self.0
    }
}

impl fmt::Debug for Caught {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Caught({:?})", self.0)
    }
}

/// Runs user code `f`, catching a panic.
#[inline]
pub(crate) fn run<R>(f: impl FnOnce() -> R) -> Result<R, Caught> {
    catch_unwind(AssertUnwindSafe(f)).map_err(Caught::from_payload)
}

/// Drops `value` (whose `Drop` is user code), catching a panic.
#[inline]
pub(crate) fn drop<T>(value: T) -> Result<(), Caught> {
    if core::mem::needs_drop::<T>() {
        run(move || core::mem::drop(value))
    } else {
        core::mem::forget(value);
        Ok(())
    }
}

/// What went wrong in user code around one task, beyond its attempt's own outcome: each
/// caught panic as a sentence, for the task's snapshot.
#[derive(Debug, Default)]
#[must_use = "notes are for the task's snapshot"]
pub(crate) struct Notes {
    text: Option<String>,
    count: usize,
}

impl Notes {
    /// No notes.
    pub(crate) const fn new() -> Self {
        Self {
            text: None,
            count: 0,
        }
    }

    /// Adds "`what` panicked: <message>" if `result` is a caught panic.
    pub(crate) fn check<T>(&mut self, what: &str, result: Result<T, Caught>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(caught) => {
                self.add(what, &caught);
                None
            }
        }
    }

    /// Adds "`what` panicked: <message>".
    pub(crate) fn add(&mut self, what: &str, caught: &Caught) {
        self.push(&std::format!("{what} panicked: {}", caught.message()));
        self.count += 1;
    }

    /// Appends `other`'s notes.
    pub(crate) fn merge(&mut self, other: Notes) {
        if let Some(more) = other.text {
            self.push(&more);
            self.count += other.count;
        }
    }

    fn push(&mut self, sentence: &str) {
        let text = self.text.get_or_insert_with(String::new);
        if !text.is_empty() {
            text.push_str("; ");
        }
        text.push_str(sentence);
    }

    /// How many panics were noted.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Whether nothing was noted.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The notes, as one text.
    pub(crate) fn into_text(self) -> Option<String> {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::{Notes, drop, run};

    struct Bomb;

    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("bomb");
        }
    }

    #[test]
    fn panics_become_messages_and_notes() {
        assert_eq!(run(|| 1).unwrap(), 1);
        assert_eq!(run(|| panic!("boom")).unwrap_err().message(), "boom");
        let caught = drop(Bomb).unwrap_err();
        assert_eq!(caught.message(), "bomb");
        let mut notes = Notes::new();
        assert!(notes.is_empty());
        assert_eq!(notes.check("the closure's drop", drop(Bomb)), None);
        notes.add("the result's clone", &caught);
        assert_eq!(notes.count(), 2);
        assert_eq!(
            notes.into_text().unwrap(),
            "the closure's drop panicked: bomb; the result's clone panicked: bomb"
        );
    }

    #[test]
    fn a_payload_whose_drop_panics_is_contained() {
        let caught = run(|| std::panic::panic_any(Bomb)).unwrap_err();
        assert_eq!(caught.message(), "a non-string panic payload");
    }
}
