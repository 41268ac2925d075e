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

/// The lock on `T`, which removes finished segments after unlocking, and
/// reads ahead from disk without the lock when delivery needs more bytes
/// soon (see `diskqueue/read_ahead.rs`).
pub struct Locked<'a, T: OwnsQueue> {
    mutex: &'a Mutex<T>,
    guard: Option<MutexGuard<'a, T>>,
}

/// A poisoned lock is taken anyway: the state is kept consistent by each
/// method, and nsqd must go on serving the other clients.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl<'a, T: OwnsQueue> Locked<'a, T> {
    pub fn new(mutex: &'a Mutex<T>) -> Self {
        Locked {
            mutex,
            guard: Some(lock(mutex)),
        }
    }
}

impl<T: OwnsQueue> std::ops::Deref for Locked<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl<T: OwnsQueue> std::ops::DerefMut for Locked<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl<T: OwnsQueue> Drop for Locked<'_, T> {
    fn drop(&mut self) {
        let Some(mut st) = self.guard.take() else {
            return;
        };
        let removals = st.queue().take_removals();
        let ahead = st.queue().plan_read_ahead();
        drop(st);
        if let Some(r) = removals {
            r.run();
        }
        if let Some(mut ahead) = ahead {
            ahead.run();
            // Handing the bytes back neither finishes segments nor plans
            // another read: nothing is left to do after this lock.
            lock(self.mutex).queue().finish_read_ahead(ahead);
        }
    }
}
