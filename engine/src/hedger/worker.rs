//! A background thread fed through a channel, for the writers kept off the hedger's hot path
//! (state snapshots, the latency interval log). Dropping one closes its channel and waits for
//! the thread to finish what was queued.

use std::sync::mpsc;
use std::thread::JoinHandle;

/// A named thread that receives `M`s until its channel closes, then returns `R`.
pub(crate) struct ChannelThread<M, R> {
    tx: Option<mpsc::Sender<M>>,
    handle: Option<JoinHandle<R>>,
}

impl<M: Send + 'static, R: Send + 'static> ChannelThread<M, R> {
    /// Spawns the thread `name` running `f` on the receiving end of a new channel.
    ///
    /// # Errors
    /// The thread cannot be spawned.
    pub(crate) fn spawn(
        name: &str,
        f: impl FnOnce(mpsc::Receiver<M>) -> R + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<M>();
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || f(rx))?;
        Ok(ChannelThread {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Queues `m` (allocates; off the hot path). Dropped when the thread has stopped.
    pub(crate) fn send(&self, m: M) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(m);
        }
    }
}

impl<M, R> ChannelThread<M, R> {
    /// Closes the channel and waits for the thread: its result, or `None` when it panicked
    /// (or was joined before).
    pub(crate) fn join(&mut self) -> Option<R> {
        self.tx.take();
        self.handle.take().and_then(|h| h.join().ok())
    }
}

impl<M, R> Drop for ChannelThread<M, R> {
    fn drop(&mut self) {
        self.join();
    }
}

impl<M, R> std::fmt::Debug for ChannelThread<M, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelThread")
            .field("running", &self.handle.is_some())
            .finish()
    }
}
