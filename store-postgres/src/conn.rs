//! One connection, reconnected when lost, driven by a current-thread runtime of its own:
//! whoever calls [`Conn::run`] drives the driver for the length of the call.

use std::time::Duration;

use errand_core::engine::{StoreError, StoreErrorKind};
use tokio_postgres::{Client, Config, NoTls};

use crate::error::{Context, kind_of, store_error};

/// A connection to the server, made again after it is lost.
pub(crate) struct Conn {
    runtime: tokio::runtime::Runtime,
    config: Config,
    client: Option<Client>,
    /// Bumped by every new connection: what a session holds (an advisory lock) does not
    /// survive a reconnection.
    generation: u64,
    /// The longest one call may take before the connection is taken to be dead.
    timeout: Duration,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("connected", &self.client.is_some())
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// A connection to `config`'s server (made now: an error here is an error at open).
    pub(crate) fn open(config: Config, timeout: Duration) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| {
                StoreError::new(
                    StoreErrorKind::Io,
                    format!("starting the driver's runtime: {error}"),
                )
            })?;
        let mut conn = Self {
            runtime,
            config,
            client: None,
            generation: 0,
            timeout,
        };
        conn.connect()?;
        Ok(conn)
    }

    /// How many times this connection was made.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    fn connect(&mut self) -> Result<(), StoreError> {
        let config = self.config.clone();
        let timeout = self.timeout;
        let client = self.runtime.block_on(async move {
            let connecting = config.connect(NoTls);
            match tokio::time::timeout(timeout, connecting).await {
                Ok(Ok((client, connection))) => {
                    // The connection's task runs whenever this runtime is driven.
                    tokio::spawn(async move {
                        drop(connection.await);
                    });
                    Ok(client)
                }
                Ok(Err(error)) => Err(store_error("connecting", &error)),
                Err(_) => Err(StoreError::new(
                    StoreErrorKind::Unavailable,
                    format!("connecting: no answer within {timeout:?}"),
                )),
            }
        })?;
        self.client = Some(client);
        self.generation += 1;
        Ok(())
    }

    /// Runs `work` on the connection (connecting again first if it was lost), for at
    /// most the call timeout. A lost or timed-out connection is dropped, to be made
    /// again by the next call.
    pub(crate) fn run<T>(
        &mut self,
        what: &str,
        work: impl AsyncFnOnce(&mut Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        self.run_on(what, async |client, _| work(client).await)
    }

    /// [`run`](Self::run) for work that may run twice (a read): when the connection was
    /// lost (the server restarted since the last call), it runs once more on a new one.
    pub(crate) fn run_again<T>(
        &mut self,
        what: &str,
        work: impl AsyncFn(&mut Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        match self.run(what, async |client| work(client).await) {
            Err(error) if error.kind() == StoreErrorKind::Unavailable => {
                self.run(what, async |client| work(client).await)
            }
            outcome => outcome,
        }
    }

    /// [`run`](Self::run), telling `work` which connection it runs on (its generation:
    /// what was prepared on another one is gone).
    pub(crate) fn run_on<T>(
        &mut self,
        what: &str,
        work: impl AsyncFnOnce(&mut Client, u64) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            self.connect()?;
        }
        let timeout = self.timeout;
        let generation = self.generation;
        let Some(client) = self.client.as_mut() else {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "not connected",
            ));
        };
        let outcome = self
            .runtime
            .block_on(async { tokio::time::timeout(timeout, work(client, generation)).await });
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                if kind_of(&error) == StoreErrorKind::Unavailable {
                    self.client = None;
                }
                Err(error).doing(what)
            }
            Err(_) => {
                self.client = None;
                Err(StoreError::new(
                    StoreErrorKind::Unavailable,
                    format!("{what}: no answer within {timeout:?}"),
                ))
            }
        }
    }
}
