//! The sync record, `<name>.nsqrs-synced.dat`: how far a queue's segments
//! are known to be on stable storage, and during which boot of the machine
//! the queue was last opened. NSQ does not know this file and ignores it.
//!
//! go-diskqueue's segments have no checksums, so after a power cut the
//! bytes written since the last fsync cannot be told from garbage: a write
//! may have been kept only in part, or the file grown with zeros where
//! the data never arrived. The metadata's write position is not enough to
//! know what was synced, since `--sync-every=1` fsyncs the data without
//! rewriting the metadata. So each sync job, once the data and the
//! directory are on disk, writes here the write position it covered and
//! fsyncs this small file. When the queue is opened during another boot
//! than the one recorded, the page cache is gone and only what a sync
//! covered is trusted: the rest is cut off. During the same boot (the
//! process died, the machine did not) every byte written is readable, and
//! nothing is cut.
//!
//! Layout: two 64-byte slots at offsets 0 and 512, a job writing the one
//! not holding the newest completed record, so that a torn write leaves
//! that one; a boot slot at 1024. Each holds a magic, a sequence number
//! (slots) or a boot id, a position, and a CRC-32C.

use super::storage::StorageFile;
use super::Position;

const MAGIC: &[u8; 16] = b"NSQRS-SYNCED-1\n\0";
pub const SLOT_LEN: usize = 64;
const SLOT_AT: [u64; 2] = [0, 512];
const BOOT_AT: u64 = 1024;

/// A slot's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Sequence number (durable slots) or 0 (the boot slot).
    pub seq: u64,
    /// Boot id (the boot slot) or 0.
    pub boot: u128,
    /// Everything before this position is on stable storage.
    pub durable: Position,
}

impl Slot {
    fn encode(&self) -> [u8; SLOT_LEN] {
        let mut b = [0u8; SLOT_LEN];
        b[..16].copy_from_slice(MAGIC);
        b[16..24].copy_from_slice(&self.seq.to_be_bytes());
        b[24..40].copy_from_slice(&self.boot.to_be_bytes());
        b[40..48].copy_from_slice(&self.durable.0.to_be_bytes());
        b[48..56].copy_from_slice(&self.durable.1.to_be_bytes());
        let crc = crc32c::crc32c(&b[..56]);
        b[56..60].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Slot> {
        if b.len() < SLOT_LEN || &b[..16] != MAGIC {
            return None;
        }
        let crc = u32::from_be_bytes(b[56..60].try_into().ok()?);
        if crc32c::crc32c(&b[..56]) != crc {
            return None;
        }
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Some(Slot {
            seq: u64_at(16),
            boot: u128::from_be_bytes(b[24..40].try_into().expect("16 bytes")),
            durable: (u64_at(40), u64_at(48)),
        })
    }
}

/// A slot write prepared for a sync job: where, and what.
pub struct SlotWrite {
    pub at: u64,
    pub bytes: [u8; SLOT_LEN],
}

/// The newest durable slot a completed job wrote (or that was read when
/// opening the queue): the next job writes the other one.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Confirmed {
    pub seq: u64,
    pub durable: Position,
    pub slot: usize,
}

/// The write recording `durable` as sequence number `seq` in `slot`.
pub fn durable_write(slot: usize, seq: u64, durable: Position) -> SlotWrite {
    SlotWrite {
        at: SLOT_AT[slot % 2],
        bytes: Slot {
            seq,
            boot: 0,
            durable,
        }
        .encode(),
    }
}

/// The write recording the current boot.
pub fn boot_write(boot: u128) -> SlotWrite {
    SlotWrite {
        at: BOOT_AT,
        bytes: Slot {
            seq: 0,
            boot,
            durable: (0, 0),
        }
        .encode(),
    }
}

/// What a sync record file holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// The newest valid durable slot.
    pub durable: Option<Confirmed>,
    /// The boot recorded at the last open, if readable.
    pub boot: Option<u128>,
}

pub fn read(file: &impl StorageFile) -> Record {
    let slot = |at: u64| {
        let mut b = [0u8; SLOT_LEN];
        match file.read_at(&mut b, at) {
            Ok(SLOT_LEN) => Slot::decode(&b),
            _ => None,
        }
    };
    let durable = SLOT_AT
        .iter()
        .enumerate()
        .filter_map(|(i, &at)| {
            slot(at).map(|s| Confirmed {
                seq: s.seq,
                durable: s.durable,
                slot: i,
            })
        })
        .max_by_key(|c| c.seq);
    let boot = slot(BOOT_AT).map(|s| s.boot).filter(|&b| b != 0);
    Record { durable, boot }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_round_trip_and_damage_is_detected() {
        let s = Slot {
            seq: 7,
            boot: 0x1234,
            durable: (3, 99),
        };
        let mut b = s.encode();
        assert_eq!(Slot::decode(&b), Some(s));
        b[45] ^= 1;
        assert_eq!(Slot::decode(&b), None);
        assert_eq!(Slot::decode(&[0u8; SLOT_LEN]), None);
    }
}
