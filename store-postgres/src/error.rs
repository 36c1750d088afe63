//! PostgreSQL's errors as the engine's [`StoreError`]s.

use errand_core::engine::{StoreError, StoreErrorKind};
use tokio_postgres::error::SqlState;

/// The store error for `error`, met while doing `what`.
pub(crate) fn store_error(what: &str, error: &tokio_postgres::Error) -> StoreError {
    let said = match error.as_db_error() {
        // The server's own words: "db error" alone says nothing.
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({}; {detail})", db.message(), db.code().code()),
            None => format!("{} ({})", db.message(), db.code().code()),
        },
        None => error.to_string(),
    };
    StoreError::new(kind_of(error), format!("{what}: {said}"))
}

/// What kind of store error `error` is.
pub(crate) fn kind_of(error: &tokio_postgres::Error) -> StoreErrorKind {
    if error.is_closed() {
        return StoreErrorKind::Unavailable;
    }
    let Some(code) = error.code() else {
        // No SQLSTATE: the connection or its socket failed (refused, reset, timed out).
        return StoreErrorKind::Unavailable;
    };
    match code {
        c if *c == SqlState::DISK_FULL || *c == SqlState::INSUFFICIENT_RESOURCES => {
            StoreErrorKind::Full
        }
        c if *c == SqlState::READ_ONLY_SQL_TRANSACTION => StoreErrorKind::ReadOnly,
        c if *c == SqlState::ADMIN_SHUTDOWN
            || *c == SqlState::CRASH_SHUTDOWN
            || *c == SqlState::CANNOT_CONNECT_NOW
            || *c == SqlState::CONNECTION_FAILURE
            || *c == SqlState::CONNECTION_EXCEPTION
            || *c == SqlState::TOO_MANY_CONNECTIONS =>
        {
            StoreErrorKind::Unavailable
        }
        _ => StoreErrorKind::Io,
    }
}

/// Whether a transaction that failed with `error` may simply run again (a deadlock with
/// another node, a serialization failure): nothing of it was committed.
pub(crate) fn is_transient(error: &tokio_postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

/// `result`'s error as a store error, with context.
pub(crate) trait Context<T> {
    /// Adds what was being done.
    fn doing(self, what: &str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, tokio_postgres::Error> {
    fn doing(self, what: &str) -> Result<T, StoreError> {
        self.map_err(|error| store_error(what, &error))
    }
}
