//! Property tests of the wire protocol: what the client side encodes, the
//! server side decodes to the same command (in one piece or byte by byte),
//! and arbitrary bytes never make either decoder panic.

use bytes::{Bytes, BytesMut};
use nsq::protocol::frame::{encode_frame, encode_message_frame};
use nsq::protocol::{
    Command, CommandDecoder, ConnState, Frame, FrameDecoder, FrameType, Gate, Limits, Message,
    MessageId,
};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._-]{1,54}(#ephemeral)?"
}

fn body() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 1..300).prop_map(Bytes::from)
}

fn id() -> impl Strategy<Value = [u8; 16]> {
    any::<u64>().prop_map(|n| MessageId(n).to_hex())
}

/// Commands valid in the given state, as a well-behaved client sends them.
fn command() -> impl Strategy<Value = (Command, ConnState)> {
    use ConnState::*;
    prop_oneof![
        body().prop_map(|b| (Command::Identify(b), Init)),
        (name(), name()).prop_map(|(topic, channel)| (Command::Sub { topic, channel }, Init)),
        (0u64..=2500).prop_map(|n| (Command::Rdy(n), Subscribed)),
        id().prop_map(|i| (Command::Fin(i), Subscribed)),
        (id(), 0u64..10_000_000)
            .prop_map(|(id, timeout_ms)| (Command::Req { id, timeout_ms }, Closing)),
        id().prop_map(|i| (Command::Touch(i), Subscribed)),
        Just((Command::Cls, Subscribed)),
        Just((Command::Nop, Init)),
        (name(), body()).prop_map(|(topic, body)| (Command::Pub { topic, body }, Subscribed)),
        (name(), prop::collection::vec(body(), 1..20))
            .prop_map(|(topic, bodies)| (Command::Mpub { topic, bodies }, Init)),
        (name(), 0u64..=3_600_000, body()).prop_map(|(topic, defer_ms, body)| (
            Command::Dpub {
                topic,
                defer_ms,
                body
            },
            Init
        )),
    ]
}

fn decoder(state: ConnState) -> CommandDecoder {
    let mut d = CommandDecoder::new(Limits::default());
    d.gate = Gate {
        state,
        ..Default::default()
    };
    d
}

proptest! {
    #[test]
    fn commands_round_trip((cmd, state) in command()) {
        let wire = cmd.to_bytes();
        let mut buf = wire.clone();
        let got = decoder(state).decode(&mut buf).unwrap();
        prop_assert_eq!(got, Some(cmd.clone()));
        prop_assert!(buf.is_empty());

        // Arriving one byte at a time changes nothing.
        let mut d = decoder(state);
        let mut buf = BytesMut::new();
        let mut got = None;
        for b in wire.iter() {
            buf.extend_from_slice(&[*b]);
            if let Some(c) = d.decode(&mut buf).unwrap() {
                prop_assert!(got.is_none());
                got = Some(c);
            }
        }
        prop_assert_eq!(got, Some(cmd));
    }

    #[test]
    fn frames_round_trip(ts in any::<i64>(), attempts in any::<u16>(), n in any::<u64>(), b in body(), text in "[ -~]{0,100}") {
        let msg = Message { id: MessageId(n), timestamp: ts, attempts, body: b };
        let mut buf = BytesMut::new();
        encode_message_frame(&mut buf, &msg);
        encode_frame(&mut buf, FrameType::Response, text.as_bytes());
        encode_frame(&mut buf, FrameType::Error, text.as_bytes());
        let mut d = FrameDecoder::default();
        prop_assert_eq!(d.decode(&mut buf).unwrap(), Some(Frame::Message(msg)));
        prop_assert_eq!(d.decode(&mut buf).unwrap(), Some(Frame::Response(Bytes::from(text.clone()))));
        prop_assert_eq!(d.decode(&mut buf).unwrap(), Some(Frame::Error(Bytes::from(text))));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000), state in 0u8..3) {
        let state = [ConnState::Init, ConnState::Subscribed, ConnState::Closing][state as usize];
        let mut d = decoder(state);
        let mut buf = BytesMut::from(&bytes[..]);
        // Decode until it needs more bytes or reports an error.
        for _ in 0..bytes.len() + 1 {
            match d.decode(&mut buf) {
                Ok(Some(_)) => continue,
                _ => break,
            }
        }
        let _ = d.decode_eof(&mut buf);
        let mut fd = FrameDecoder::default();
        let mut buf = BytesMut::from(&bytes[..]);
        for _ in 0..bytes.len() + 1 {
            match fd.decode(&mut buf) {
                Ok(Some(_)) => continue,
                _ => break,
            }
        }
    }

    #[test]
    fn command_prefixes_with_garbage_never_panic((cmd, state) in command(), tail in prop::collection::vec(any::<u8>(), 0..64), cut in any::<prop::sample::Index>()) {
        let wire = cmd.to_bytes();
        let cut = cut.index(wire.len() + 1);
        let mut bytes = wire[..cut].to_vec();
        bytes.extend(tail);
        let mut d = decoder(state);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = d.decode(&mut buf) {}
        let _ = d.decode_eof(&mut buf);
    }
}
