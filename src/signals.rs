//! SIGINT and SIGTERM, handled from the moment [`Signals::install`] is
//! called: install first, then start serving, so that a signal arriving
//! just after the listening addresses are logged still means a clean stop
//! rather than the default action (death with no exit status).

use tokio::signal::unix::{signal, Signal, SignalKind};

pub struct Signals {
    int: Option<Signal>,
    term: Option<Signal>,
}

impl Signals {
    /// Must run inside a tokio runtime.
    pub fn install() -> Signals {
        Signals {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Wait for SIGINT or SIGTERM.
    pub async fn recv(&mut self) {
        async fn on(s: &mut Option<Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = on(&mut self.int) => {}
            _ = on(&mut self.term) => {}
        }
    }
}
