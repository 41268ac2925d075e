//! Server → client frames: `[i32 BE size][i32 BE type][data]`, where size
//! counts the type field plus the data.

use super::message::{Message, MESSAGE_HEADER_LEN};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum FrameType {
    Response = 0,
    Error = 1,
    Message = 2,
}

/// Append a response or error frame.
pub fn encode_frame(buf: &mut BytesMut, frame_type: FrameType, data: &[u8]) {
    buf.reserve(8 + data.len());
    buf.put_u32(4 + data.len() as u32);
    buf.put_i32(frame_type as i32);
    buf.put_slice(data);
}

/// Append a message frame (the hot path: one reserve, straight copies).
pub fn encode_message_frame(buf: &mut BytesMut, msg: &Message) {
    let len = msg.encoded_len();
    buf.reserve(8 + len);
    buf.put_u32(4 + len as u32);
    buf.put_i32(FrameType::Message as i32);
    msg.encode(buf);
}

/// A frame as a client receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Response(Bytes),
    Error(Bytes),
    Message(Message),
}

impl Frame {
    /// Whether this is the `_heartbeat_` response, which clients answer with NOP.
    pub fn is_heartbeat(&self) -> bool {
        matches!(self, Frame::Response(b) if b.as_ref() == super::HEARTBEAT)
    }
}

/// Client side: frames out of the bytes nsqd sends.
#[derive(Debug)]
pub struct FrameDecoder {
    /// Frames larger than this are refused as a protocol error.
    pub max_frame: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder {
            // nsqd's largest frame is a message of --max-msg-size; leave room
            // for servers configured far above the default.
            max_frame: 256 * 1024 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("invalid frame size {0}")]
    BadSize(i64),
    #[error("unknown frame type {0}")]
    BadType(i32),
    #[error("message frame too short or malformed")]
    BadMessage,
    #[error("connected to an HTTP port, not the TCP protocol port")]
    Http,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Decoder for FrameDecoder {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let size = i32::from_be_bytes(src[..4].try_into().expect("4 bytes"));
        // "HTTP" read as a size: someone pointed us at an HTTP listener.
        if size == 0x4854_5450 {
            return Err(FrameError::Http);
        }
        if size < 4 || size as usize > self.max_frame {
            return Err(FrameError::BadSize(size as i64));
        }
        let size = size as usize;
        if src.len() < 4 + size {
            src.reserve(4 + size - src.len());
            return Ok(None);
        }
        src.advance(4);
        let frame_type = src.get_i32();
        let data = src.split_to(size - 4).freeze();
        match frame_type {
            0 => Ok(Some(Frame::Response(data))),
            1 => Ok(Some(Frame::Error(data))),
            2 => {
                if data.len() < MESSAGE_HEADER_LEN {
                    return Err(FrameError::BadMessage);
                }
                Message::decode(data)
                    .map(|m| Some(Frame::Message(m)))
                    .ok_or(FrameError::BadMessage)
            }
            t => Err(FrameError::BadType(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::message::MessageId;

    #[test]
    fn response_bytes() {
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, FrameType::Response, b"OK");
        assert_eq!(&buf[..], b"\x00\x00\x00\x06\x00\x00\x00\x00OK");
    }

    #[test]
    fn round_trip() {
        let mut buf = BytesMut::new();
        let mut msg = Message::new(MessageId(42), 7, Bytes::from_static(b"body"));
        msg.attempts = 2;
        encode_message_frame(&mut buf, &msg);
        encode_frame(&mut buf, FrameType::Error, b"E_INVALID x");
        let mut d = FrameDecoder::default();
        assert_eq!(d.decode(&mut buf).unwrap(), Some(Frame::Message(msg)));
        assert_eq!(
            d.decode(&mut buf).unwrap(),
            Some(Frame::Error(Bytes::from_static(b"E_INVALID x")))
        );
        assert!(buf.is_empty());
    }
}
