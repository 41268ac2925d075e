//! A future polled again only after it asked to be.
//!
//! A connection's loop waits for "killed" or "shutting down" on every turn.
//! Polling a pending cancellation future locks the token's mutex and then
//! its `Notify`'s, and nsqd's shutdown token is one token shared by every
//! connection: the cores running connections took turns on those cache
//! lines on every turn of every connection, for events that happen once.
//! [`WhenWoken`] polls the inner future once, with a waker of its own, and
//! after that only when that waker has fired: one atomic swap per turn.

use futures_util::task::AtomicWaker;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

pub(super) struct WhenWoken<F> {
    inner: Pin<Box<F>>,
    signal: Arc<Signal>,
    waker: Waker,
}

struct Signal {
    /// The inner future woke (or was never polled): poll it next time.
    fired: AtomicBool,
    /// The task now waiting on the [`WhenWoken`].
    task: AtomicWaker,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<F: Future> WhenWoken<F> {
    pub(super) fn new(inner: F) -> Self {
        let signal = Arc::new(Signal {
            fired: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        WhenWoken {
            inner: Box::pin(inner),
            waker: Waker::from(signal.clone()),
            signal,
        }
    }
}

impl<F: Future> Future for WhenWoken<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Registered before the flag is read: a wake-up in between finds
        // this task's waker and wakes it again.
        self.signal.task.register(cx.waker());
        if !self.signal.fired.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let this = &mut *self;
        this.inner
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    /// Pending until `ready` is set; counts its polls; wakes whatever
    /// waker it was last given when `fire` is called.
    #[derive(Default)]
    struct Probe {
        polls: AtomicUsize,
        ready: AtomicBool,
        waker: Mutex<Option<Waker>>,
    }

    impl Probe {
        fn fire(&self, ready: bool) {
            self.ready.store(ready, Ordering::SeqCst);
            if let Some(w) = self.waker.lock().unwrap().take() {
                w.wake();
            }
        }

        fn wait(self: Arc<Self>) -> impl Future<Output = &'static str> {
            std::future::poll_fn(move |cx| {
                self.polls.fetch_add(1, Ordering::SeqCst);
                if self.ready.load(Ordering::SeqCst) {
                    return Poll::Ready("done");
                }
                *self.waker.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            })
        }
    }

    #[derive(Default)]
    struct CountWakes(AtomicUsize);
    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_inner_future_is_polled_once_then_only_after_waking() {
        let probe = Arc::new(Probe::default());
        let mut fut = WhenWoken::new(probe.clone().wait());
        let task = Arc::new(CountWakes::default());
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        let polls = || probe.polls.load(Ordering::SeqCst);

        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        assert_eq!(polls(), 1);
        for _ in 0..5 {
            assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        }
        assert_eq!(polls(), 1, "not polled again without a wake-up");

        // A spurious wake-up: the task is woken, the inner future polled
        // once more and still pending.
        probe.fire(false);
        assert_eq!(task.0.load(Ordering::SeqCst), 1);
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        assert_eq!(polls(), 2);

        probe.fire(true);
        assert_eq!(task.0.load(Ordering::SeqCst), 2);
        assert_eq!(Pin::new(&mut fut).poll(&mut cx), Poll::Ready("done"));
    }

    #[test]
    fn the_latest_task_is_woken() {
        let probe = Arc::new(Probe::default());
        let mut fut = WhenWoken::new(probe.clone().wait());
        let (first, second) = (
            Arc::new(CountWakes::default()),
            Arc::new(CountWakes::default()),
        );
        let w1 = Waker::from(first.clone());
        let w2 = Waker::from(second.clone());
        assert!(Pin::new(&mut fut)
            .poll(&mut Context::from_waker(&w1))
            .is_pending());
        assert!(Pin::new(&mut fut)
            .poll(&mut Context::from_waker(&w2))
            .is_pending());
        probe.fire(true);
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_cancellation_reaches_a_waiting_task() {
        let token = tokio_util::sync::CancellationToken::new();
        let waiting = tokio::spawn(WhenWoken::new(token.clone().cancelled_owned()));
        tokio::task::yield_now().await;
        token.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .unwrap();
    }
}
