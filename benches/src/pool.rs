//! The baseline errand-threads is measured against: the thread pool a user would write
//! without it — N threads taking boxed closures from a crossbeam channel.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, unbounded};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Threads taking boxed closures from an unbounded crossbeam channel, in the order sent,
/// with a way to wait until every closure sent so far has run. No priorities, no results,
/// no cancellation: the floor a task system is compared with.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use errand_benches::ChannelPool;
///
/// let pool = ChannelPool::new(2);
/// let ran = Arc::new(AtomicUsize::new(0));
/// for _ in 0..100 {
///     let ran = Arc::clone(&ran);
///     pool.execute(move || {
///         ran.fetch_add(1, Ordering::Relaxed);
///     });
/// }
/// pool.wait_idle();
/// assert_eq!(ran.load(Ordering::Relaxed), 100);
/// ```
#[derive(Debug)]
pub struct ChannelPool {
    sender: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    pending: Arc<Pending>,
}

/// Closures sent and not yet finished, and a condition variable for reaching zero.
#[derive(Debug, Default)]
struct Pending {
    count: AtomicUsize,
    lock: Mutex<()>,
    zero: Condvar,
}

impl ChannelPool {
    /// Starts `threads` threads (named `channel-pool`).
    ///
    /// # Panics
    ///
    /// If a thread cannot be started.
    #[must_use]
    pub fn new(threads: usize) -> Self {
        let (sender, receiver) = unbounded::<Job>();
        let pending = Arc::new(Pending::default());
        let threads = (0..threads)
            .map(|_| {
                let receiver = receiver.clone();
                let pending = Arc::clone(&pending);
                std::thread::Builder::new()
                    .name("channel-pool".into())
                    .spawn(move || {
                        for job in receiver {
                            job();
                            if pending.count.fetch_sub(1, Ordering::AcqRel) == 1 {
                                // Taken so a waiter between its check and its wait is
                                // not missed.
                                let _guard =
                                    pending.lock.lock().unwrap_or_else(PoisonError::into_inner);
                                pending.zero.notify_all();
                            }
                        }
                    })
                    .expect("a pool thread")
            })
            .collect();
        Self {
            sender: Some(sender),
            threads,
            pending,
        }
    }

    /// Sends `job` to the pool.
    pub fn execute(&self, job: impl FnOnce() + Send + 'static) {
        self.pending.count.fetch_add(1, Ordering::AcqRel);
        self.sender
            .as_ref()
            .expect("the sender lives until drop")
            .send(Box::new(job))
            .expect("the pool's threads live until drop");
    }

    /// Blocks until every closure sent so far has run.
    pub fn wait_idle(&self) {
        let mut guard = self
            .pending
            .lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while self.pending.count.load(Ordering::Acquire) != 0 {
            guard = self
                .pending
                .zero
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Drop for ChannelPool {
    /// Closes the channel, lets the threads finish what was sent, and joins them.
    fn drop(&mut self) {
        drop(self.sender.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The floor of any thread pool: threads taking boxed closures from a *bounded*
/// crossbeam channel, with no tracking at all (no pending count, no result, no wait).
/// The only way to know every closure has run is [`join`](Self::join), which closes the
/// channel and joins the threads.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use errand_benches::BarePool;
///
/// let pool = BarePool::new(2, 1024);
/// let ran = Arc::new(AtomicUsize::new(0));
/// for _ in 0..100 {
///     let ran = Arc::clone(&ran);
///     pool.execute(move || {
///         ran.fetch_add(1, Ordering::Relaxed);
///     });
/// }
/// pool.join();
/// assert_eq!(ran.load(Ordering::Relaxed), 100);
/// ```
#[derive(Debug)]
pub struct BarePool {
    sender: crossbeam_channel::Sender<Job>,
    threads: Vec<JoinHandle<()>>,
}

impl BarePool {
    /// Starts `threads` threads (named `bare-pool`) behind a channel of `capacity` jobs
    /// (a sender blocks while it is full).
    ///
    /// # Panics
    ///
    /// If a thread cannot be started.
    #[must_use]
    pub fn new(threads: usize, capacity: usize) -> Self {
        let (sender, receiver) = crossbeam_channel::bounded::<Job>(capacity);
        let threads = (0..threads)
            .map(|_| {
                let receiver = receiver.clone();
                std::thread::Builder::new()
                    .name("bare-pool".into())
                    .spawn(move || {
                        for job in receiver {
                            job();
                        }
                    })
                    .expect("a pool thread")
            })
            .collect();
        Self { sender, threads }
    }

    /// Sends `job` to the pool, waiting while the channel is full.
    pub fn execute(&self, job: impl FnOnce() + Send + 'static) {
        self.sender
            .send(Box::new(job))
            .expect("the pool's threads live until join");
    }

    /// Closes the channel and waits until the threads have run every closure sent.
    ///
    /// # Panics
    ///
    /// If a closure panicked (its thread's panic is passed on).
    pub fn join(self) {
        drop(self.sender);
        for thread in self.threads {
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}
