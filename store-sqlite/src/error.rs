//! SQLite's errors as the engine's [`StoreError`]s.

use errand_core::engine::{StoreError, StoreErrorKind};
use rusqlite::ErrorCode;

/// The store error for SQLite error `error`, met while doing `what`.
pub(crate) fn store_error(what: &str, error: &rusqlite::Error) -> StoreError {
    let kind = match error.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StoreErrorKind::Full,
        Some(ErrorCode::ReadOnly) | Some(ErrorCode::CannotOpen) => StoreErrorKind::ReadOnly,
        Some(ErrorCode::NotADatabase) => StoreErrorKind::NotErrand,
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => StoreErrorKind::Locked,
        _ => StoreErrorKind::Io,
    };
    StoreError::new(kind, format!("{what}: {error}"))
}

/// `result`'s error as a store error, with context.
pub(crate) trait Context<T> {
    /// Adds what was being done.
    fn doing(self, what: &str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, rusqlite::Error> {
    fn doing(self, what: &str) -> Result<T, StoreError> {
        self.map_err(|error| store_error(what, &error))
    }
}
