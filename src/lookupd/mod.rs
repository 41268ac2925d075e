//! nsqlookupd: the discovery service nsqd instances register their topics and
//! channels with, and consumers ask where a topic is produced.
//!
//! * [`registration_db`]: the in-memory registration database (no I/O, no
//!   locking) and the JSON shapes of producers and nodes in the HTTP API.
//! * [`tcp`] speaks protocol V1 with nsqd, [`http`] serves the HTTP API,
//!   [`server`] ties them together; [`options`] defines the flags.

pub mod http;
pub mod options;
pub mod registration_db;
pub mod server;
pub mod tcp;

pub use options::Options;

pub use registration_db::{
    filter_active, Category, LastUpdate, Lookup, Node, PeerInfo, Producer, ProducerJson,
    Registration, RegistrationDb, RegistrationsExt, WILDCARD,
};
