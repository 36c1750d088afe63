//! The listener: a thread with a connection of its own that `LISTEN`s on the store's
//! channel and calls the engine's hint when another node notifies (one notification per
//! transaction that left claimable work, at most). Notifications are only hints: a lost
//! one costs at most the poll interval, and after a reconnection the listener hints once,
//! for whatever it may have missed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use errand_core::engine::durable::Hint;
use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, Config, NoTls};

/// How often the listener looks at its stop flag while nothing arrives.
const TICK: Duration = Duration::from_millis(200);
/// The longest wait before connecting again after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A running listener; dropping it stops its thread.
#[derive(Debug)]
pub(crate) struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Starts listening on `channel`; notifications whose payload is not `node` (this
    /// node's own) call `hint`.
    pub(crate) fn start(config: Config, channel: String, node: String, hint: Hint) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("errand-listen".into())
            .spawn(move || listen(&config, &channel, &node, &hint, &stopping))
            .ok();
        Self { stop, thread }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            drop(thread.join());
        }
    }
}

fn listen(config: &Config, channel: &str, node: &str, hint: &Hint, stop: &AtomicBool) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    runtime.block_on(async {
        let mut backoff = Duration::from_millis(100);
        let mut first = true;
        while !stop.load(Ordering::Relaxed) {
            if session(config, channel, node, hint, stop, &mut first).await {
                backoff = Duration::from_millis(100);
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
            // Lost or never made: wait (in ticks, to notice a stop), then connect again.
            let mut waited = Duration::ZERO;
            while waited < backoff && !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(TICK).await;
                waited += TICK;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    });
}

/// One connection's life: `LISTEN`, then hints until it ends or the store stops.
/// Whether it got as far as listening.
async fn session(
    config: &Config,
    channel: &str,
    node: &str,
    hint: &Hint,
    stop: &AtomicBool,
    first: &mut bool,
) -> bool {
    let Ok((client, mut connection)) = config.connect(NoTls).await else {
        return false;
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let driver = tokio::spawn(messages.for_each(move |message| {
        drop(tx.send(message));
        async {}
    }));
    let listening = client
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .await
        .is_ok();
    if listening {
        // Anything sent while this node was not listening: look once.
        if !*first {
            hint();
        }
        *first = false;
        while !stop.load(Ordering::Relaxed) {
            match tokio::time::timeout(TICK, rx.recv()).await {
                Ok(Some(Ok(AsyncMessage::Notification(note)))) => {
                    if note.payload() != node {
                        hint();
                    }
                }
                Ok(Some(Ok(_))) | Err(_) => {}
                // The connection failed or ended.
                Ok(Some(Err(_)) | None) => break,
            }
        }
    }
    drop(client);
    driver.abort();
    listening
}
