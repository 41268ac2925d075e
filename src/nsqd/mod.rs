//! nsqd
