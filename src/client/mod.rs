//! Client side: producer and consumer.
