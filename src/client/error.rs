//! The client's one error type: every variant names the nsqd it concerns,
//! so that a tool can print it as one line.

use std::sync::Arc;
use std::time::Duration;

/// Everything that can go wrong talking to nsqd. I/O failures keep their
/// `std::io::Error` as the source (shared, so that an error can be handed
/// to every waiter of a connection).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to nsqd at {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("nsqd at {addr} did not answer within {after:?}")]
    Timeout { addr: String, after: Duration },
    /// An error frame from nsqd, e.g. `E_BAD_TOPIC PUB topic name "x!" is not valid`.
    #[error("nsqd at {addr} refused: {text}")]
    Server { addr: String, text: String },
    #[error("connection to nsqd at {addr} failed: {source}")]
    Io {
        addr: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("nsqd at {addr} sent something unexpected: {reason}")]
    Protocol { addr: String, reason: String },
    #[error("the connection to nsqd at {addr} is closed")]
    Closed { addr: String },
    #[error("nsqlookupd at {addr}: {reason}")]
    Lookupd { addr: String, reason: String },
    /// A consumer was given no nsqd to connect to.
    #[error("no nsqd address given")]
    NoAddress,
    /// A command this API does not send (e.g. a FIN given to a producer).
    #[error("{command} cannot be sent this way ({reason})")]
    Unsupported {
        command: &'static str,
        reason: &'static str,
    },
}

impl ClientError {
    pub(crate) fn io(addr: &str, source: std::io::Error) -> ClientError {
        ClientError::Io {
            addr: addr.to_string(),
            source: Arc::new(source),
        }
    }
}
