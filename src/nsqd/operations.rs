//! What clients do to the engine, whichever protocol they speak: publish
//! (TCP `PUB`/`MPUB`/`DPUB` and HTTP `/pub`/`/mpub`), wait for a publish
//! to be durable, subscribe and leave. The TCP connection and the HTTP
//! handlers only translate between these and their wire formats.

use super::backend::{BackendError, Ticket, TicketStatus};
use super::channel::{AddClientError, Channel};
use super::client_state::ClientHandle;
use super::lookup::LookupEvent;
use super::topic::Topic;
use super::Nsqd;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// A consumer's place in a channel.
pub struct Subscription {
    pub topic: Arc<Topic>,
    pub channel: Arc<Channel>,
}

/// Why a SUB was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    #[error("consumers for {topic}:{channel} exceeds limit of {limit}")]
    TooManyConsumers {
        topic: String,
        channel: String,
        limit: usize,
    },
    /// The topic or channel kept being deleted under us.
    #[error("to deleted topic/channel")]
    Deleted,
}

/// Where a publish stands with respect to the disk (`--sync-every=1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Safe to acknowledge.
    Durable,
    /// Waiting for a sync round (one has been asked for).
    Pending,
    /// The sync failed: the publish must be answered with an error.
    Failed,
}

/// Why waiting for durability ended without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DurabilityError {
    #[error("fsync failed")]
    SyncFailed,
    #[error("exiting")]
    Exiting,
}

impl Nsqd {
    /// Put `bodies` on `topic` (deferred by `defer`). The returned ticket
    /// tells when the publish may be acknowledged (see [`Nsqd::durability`]).
    /// Storage failures make nsqd unhealthy until the next success.
    pub fn publish(
        &self,
        topic: &Topic,
        bodies: impl IntoIterator<Item = Bytes>,
        defer: Duration,
    ) -> Result<Ticket, BackendError> {
        let result = topic.put(bodies, defer).map(|(_, ticket)| ticket);
        self.note_put(&result);
        result
    }

    /// Where the publish of `ticket` stands; asks for a sync round if it
    /// is still waiting. Connections that hold many publishes check their
    /// oldest after each round ([`Nsqd::sync_rounds`]).
    pub fn durability(&self, ticket: &Ticket) -> Durability {
        match ticket.status() {
            TicketStatus::Durable => Durability::Durable,
            TicketStatus::Failed => Durability::Failed,
            TicketStatus::Pending => {
                self.request_sync();
                Durability::Pending
            }
        }
    }

    /// Wait until the publish of `ticket` may be acknowledged.
    pub async fn wait_durable(&self, ticket: &Ticket) -> Result<(), DurabilityError> {
        let mut rounds = self.sync_rounds();
        loop {
            match self.durability(ticket) {
                Durability::Durable => return Ok(()),
                Durability::Failed => return Err(DurabilityError::SyncFailed),
                Durability::Pending => {}
            }
            tokio::select! {
                changed = rounds.changed() => if changed.is_err() {
                    return Err(DurabilityError::Exiting);
                },
                _ = self.shutdown.cancelled() => return Err(DurabilityError::Exiting),
            }
        }
    }

    /// Join `client` to `topic_name`/`channel_name`, creating both as
    /// needed. A topic or channel deleted at that moment is recreated (a
    /// few times at most).
    pub fn subscribe(
        &self,
        topic_name: &str,
        channel_name: &str,
        client: &Arc<ClientHandle>,
    ) -> Result<Subscription, SubscribeError> {
        let limit = self.settings.max_channel_consumers;
        for _ in 0..3 {
            let topic = self.get_or_create_topic(topic_name);
            let channel = self.get_or_create_channel(&topic, channel_name);
            match channel.add_client(client.clone(), limit) {
                Ok(()) if !topic.is_exiting() && !channel.is_exiting() => {
                    return Ok(Subscription { topic, channel });
                }
                // Deleted just after we joined: leave and try a fresh one.
                Ok(()) => {
                    channel.remove_client(client.id);
                }
                Err(AddClientError::Exiting) => {}
                Err(AddClientError::Full) => {
                    return Err(SubscribeError::TooManyConsumers {
                        topic: topic_name.to_string(),
                        channel: channel_name.to_string(),
                        limit,
                    })
                }
            }
        }
        Err(SubscribeError::Deleted)
    }

    /// `client` leaves its channel; an ephemeral channel (and then an
    /// ephemeral topic) left with nobody goes away.
    pub fn unsubscribe(&self, sub: Subscription, client_id: u64) {
        let remaining = sub.channel.remove_client(client_id);
        if remaining == 0
            && sub.channel.ephemeral
            && sub.topic.delete_channel_if_unused(&sub.channel)
        {
            self.notify_lookup(LookupEvent::Unregister {
                topic: sub.topic.name.clone(),
                channel: Some(sub.channel.name.clone()),
            });
            if sub.topic.ephemeral {
                self.delete_topic_if_unused(&sub.topic);
            }
        }
    }
}
