//! A topic's or channel's state, locked, for work that may finish disk
//! segments: the segments are only renamed under the lock, and removed
//! once it is let go (see `DiskQueue::defer_removals`). Unlinking a 100 MB
//! segment frees 25,000 cached pages, which took milliseconds while every
//! publisher or consumer of that topic or channel waited for the lock.

use super::backend::Queue;
use std::sync::{Mutex, MutexGuard};

/// State that owns a [`Queue`].
pub trait OwnsQueue {
    fn queue(&mut self) -> &mut Queue;
}

/// The lock on `T`, which removes finished segments after unlocking.
pub struct Locked<'a, T: OwnsQueue>(Option<MutexGuard<'a, T>>);

impl<'a, T: OwnsQueue> Locked<'a, T> {
    /// A poisoned lock is taken anyway: the state is kept consistent by
    /// each method, and nsqd must go on serving the other clients.
    pub fn new(mutex: &'a Mutex<T>) -> Self {
        Locked(Some(mutex.lock().unwrap_or_else(|e| e.into_inner())))
    }
}

impl<T: OwnsQueue> std::ops::Deref for Locked<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_ref().expect("held until dropped")
    }
}

impl<T: OwnsQueue> std::ops::DerefMut for Locked<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_mut().expect("held until dropped")
    }
}

impl<T: OwnsQueue> Drop for Locked<'_, T> {
    fn drop(&mut self) {
        let removals = self.0.as_mut().and_then(|st| st.queue().take_removals());
        drop(self.0.take());
        if let Some(r) = removals {
            r.run();
        }
    }
}
