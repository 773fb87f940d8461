//! The producer/consumer pair of a bounded queue that never overwrites: what the hedger's core
//! and its tests program against. Two queues stand behind it: the shared-memory SPSC ring
//! ([`crate::SpscProducer`], [`crate::SpscConsumer`]) between processes, and in-process queues
//! (the engine's `MemOrders` and `MemExecs`, or a recording/playback wrapper) in tests, replay
//! and backtests, so the core has one code path for both.
//!
//! Semantics every implementation keeps (those of the SPSC ring): `push` hands the message
//! back when the queue is full (back-pressure; the caller counts it and acts); the consumer
//! reads with `peek` (successive peeks read successive messages) and `commit`s what it has
//! made durable, so that a restarted consumer reads the uncommitted messages again.

/// The producing side.
pub trait Producer<T> {
    /// Pushes one message, or hands it back when the queue is full. No allocation.
    ///
    /// # Errors
    /// `Err(msg)` when full.
    fn push(&mut self, msg: T) -> Result<(), T>;
    /// Messages pushed and not yet committed by the consumer.
    fn pending(&self) -> usize;
}

/// The consuming side.
pub trait Consumer<T> {
    /// The next message not yet read (advances the read position, does not commit).
    fn peek(&mut self) -> Option<T>;
    /// Commits the `n` oldest read messages: they are not delivered again after a restart.
    fn commit(&mut self, n: usize);
}

#[cfg(not(loom))]
impl<T: bytemuck::Pod> Producer<T> for crate::SpscProducer<T> {
    #[inline]
    fn push(&mut self, msg: T) -> Result<(), T> {
        crate::SpscProducer::push(self, msg)
    }
    #[inline]
    fn pending(&self) -> usize {
        self.len()
    }
}

#[cfg(not(loom))]
impl<T: bytemuck::Pod> Consumer<T> for crate::SpscConsumer<T> {
    #[inline]
    fn peek(&mut self) -> Option<T> {
        crate::SpscConsumer::peek(self)
    }
    #[inline]
    fn commit(&mut self, n: usize) {
        crate::SpscConsumer::commit(self, n)
    }
}
