use super::*;
use proptest::prelude::*;
use std::collections::VecDeque;

fn cfg(max_bytes_per_file: u64) -> Config {
    Config {
        max_bytes_per_file,
        min_record_size: 1,
        max_record_size: 1000,
        sync_every: 2500,
    }
}

fn record(i: u32, len: usize) -> Vec<u8> {
    let mut r = i.to_be_bytes().to_vec();
    r.resize(len.max(4), b'a' + (i % 26) as u8);
    r
}

fn drain(q: &mut DiskQueue) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| q.pop()).map(|b| b.to_vec()).collect()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn writes_nsq_layout_and_resumes_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(dir.path(), "t", cfg(1 << 20)).unwrap();
    q.put([&b"hello"[..], b"world!"]).unwrap();
    assert_eq!(q.depth(), 2);
    q.sync().unwrap();
    let seg = std::fs::read(dir.path().join("t.diskqueue.000000.dat")).unwrap();
    assert_eq!(seg, b"\0\0\0\x05hello\0\0\0\x06world!");
    let meta = std::fs::read_to_string(dir.path().join("t.diskqueue.meta.dat")).unwrap();
    assert_eq!(meta, "2\n0,0\n0,19\n");

    assert_eq!(q.pop().unwrap(), &b"hello"[..]);
    q.sync().unwrap();
    drop(q);
    let mut q = DiskQueue::open(dir.path(), "t", cfg(1 << 20)).unwrap();
    assert_eq!(q.depth(), 1);
    assert_eq!(drain(&mut q), vec![b"world!".to_vec()]);
}

#[test]
fn rolls_over_and_deletes_read_segments() {
    let dir = tempfile::tempdir().unwrap();
    // 4 + 10 bytes per record, 30 bytes per file: two records per segment.
    let mut q = DiskQueue::open(dir.path(), "t", cfg(30)).unwrap();
    let recs: Vec<Vec<u8>> = (0..5).map(|i| record(i, 10)).collect();
    q.put(recs.iter().map(|r| r.as_slice())).unwrap();
    assert_eq!(
        files(dir.path()),
        [
            "t.diskqueue.000000.dat",
            "t.diskqueue.000001.dat",
            "t.diskqueue.000002.dat",
            "t.nsqrs-synced.dat"
        ]
    );
    assert_eq!(q.pop().unwrap(), recs[0]);
    assert_eq!(q.pop().unwrap(), recs[1]);
    assert_eq!(q.pop().unwrap(), recs[2]);
    // Segment 0 was read to its end and removed.
    assert!(!dir.path().join("t.diskqueue.000000.dat").exists());
    assert_eq!(drain(&mut q), recs[3..].to_vec());
}

#[test]
fn a_record_larger_than_a_file_gets_a_file_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(dir.path(), "t", cfg(30)).unwrap();
    let big = record(1, 100);
    q.put([
        record(0, 5).as_slice(),
        big.as_slice(),
        record(2, 5).as_slice(),
    ])
    .unwrap();
    let len = |n| {
        std::fs::metadata(dir.path().join(format!("t.diskqueue.00000{n}.dat")))
            .unwrap()
            .len()
    };
    assert_eq!((len(0), len(1), len(2)), (9, 104, 9));
    assert_eq!(drain(&mut q).len(), 3);
}

#[test]
fn rejects_records_outside_the_size_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(dir.path(), "t", cfg(1000)).unwrap();
    assert!(matches!(q.put([&b""[..]]), Err(WriteError::Size { .. })));
    assert!(matches!(
        q.put([vec![0u8; 1001].as_slice()]),
        Err(WriteError::Size { .. })
    ));
    assert_eq!(q.depth(), 0);
}

#[test]
fn unsynced_tail_after_a_crash_is_kept_and_writing_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(dir.path(), "t", cfg(1 << 20)).unwrap();
    q.put([&b"one"[..]]).unwrap();
    q.sync().unwrap();
    q.put([&b"two"[..], b"three"]).unwrap();
    drop(q); // no sync: the metadata says one record
    let mut q = DiskQueue::open(dir.path(), "t", cfg(1 << 20)).unwrap();
    assert_eq!(q.depth(), 3);
    q.put([&b"four"[..]]).unwrap();
    assert!(dir.path().join("t.diskqueue.000001.dat").exists());
    assert_eq!(
        drain(&mut q),
        vec![
            b"one".to_vec(),
            b"two".to_vec(),
            b"three".to_vec(),
            b"four".to_vec()
        ]
    );
}

#[test]
fn damaged_segment_is_set_aside_and_later_ones_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(dir.path(), "t", cfg(30)).unwrap();
    let recs: Vec<Vec<u8>> = (0..6).map(|i| record(i, 10)).collect();
    q.put(recs.iter().map(|r| r.as_slice())).unwrap();
    q.sync().unwrap();
    drop(q);
    // Scribble over the second length prefix of segment 1.
    let seg1 = dir.path().join("t.diskqueue.000001.dat");
    let mut bytes = std::fs::read(&seg1).unwrap();
    bytes[14..18].copy_from_slice(&[0xff; 4]);
    std::fs::write(&seg1, bytes).unwrap();

    let mut q = DiskQueue::open(dir.path(), "t", cfg(30)).unwrap();
    let got = drain(&mut q);
    // Segment 1's first record is read, its damaged second one is lost.
    assert_eq!(got, [&recs[0..3], &recs[4..6]].concat());
    assert_eq!(q.bad_segments(), 1);
    assert!(dir.path().join("t.diskqueue.000001.dat.bad").exists());
    assert_eq!(q.depth(), 0);
}

#[test]
fn truncated_write_segment_is_set_aside_and_writing_continues() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(dir.path(), "t", cfg(1 << 20)).unwrap();
    q.put([&b"aaaa"[..], b"bbbb"]).unwrap();
    q.sync().unwrap();
    drop(q);
    let seg = dir.path().join("t.diskqueue.000000.dat");
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(10).unwrap(); // the second record loses its tail
    drop(f);
    let mut q = DiskQueue::open(dir.path(), "t", cfg(1 << 20)).unwrap();
    assert_eq!(q.pop().unwrap(), &b"aaaa"[..]);
    assert_eq!(q.pop(), None);
    assert!(dir.path().join("t.diskqueue.000000.dat.bad").exists());
    q.put([&b"cccc"[..]]).unwrap();
    assert_eq!(drain(&mut q), vec![b"cccc".to_vec()]);
}

#[test]
fn garbage_metadata_is_set_aside_and_segments_reread() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(dir.path(), "t", cfg(30)).unwrap();
    let recs: Vec<Vec<u8>> = (0..5).map(|i| record(i, 10)).collect();
    q.put(recs.iter().map(|r| r.as_slice())).unwrap();
    q.pop();
    q.sync().unwrap();
    drop(q);
    std::fs::write(dir.path().join("t.diskqueue.meta.dat"), b"\x00garbage\n").unwrap();
    let mut q = DiskQueue::open(dir.path(), "t", cfg(30)).unwrap();
    assert!(dir.path().join("t.diskqueue.meta.dat.bad").exists());
    // The first record is read again: at-least-once, nothing lost.
    assert_eq!(q.depth(), 5);
    assert_eq!(drain(&mut q), recs);
}

/// Found by fuzzing (`diskqueue_recovery`): metadata whose write segment
/// is numbered far beyond the files made reading walk every number in
/// between, recounting the depth at each one (a hang).
#[test]
fn metadata_far_ahead_of_the_files_is_not_walked_number_by_number() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.diskqueue.meta.dat"),
        "2\n0,0\n2111111111,0\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("t.diskqueue.000002.dat"), b"\0\0\0\x01X").unwrap();
    let start = std::time::Instant::now();
    let mut q = DiskQueue::open(dir.path(), "t", cfg(1 << 20)).unwrap();
    assert_eq!(drain(&mut q), vec![b"X".to_vec()]);
    assert_eq!(q.depth(), 0);
    q.put([&b"after"[..]]).unwrap();
    assert_eq!(drain(&mut q), vec![b"after".to_vec()]);
    q.put([&b"gone"[..]]).unwrap();
    q.empty().unwrap();
    assert_eq!(drain(&mut q), Vec::<Vec<u8>>::new());
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
}

/// As above, through the paths that move past a finished segment without
/// reading it: metadata saying nothing is unread (depth 0, the read
/// segment read to its end) but whose write segment is far past the read
/// one makes the owner cache what it writes and then `skip_tracked` past
/// it, and `peek` walk from the read position.
#[test]
fn skipping_and_peeking_do_not_walk_a_gap_number_by_number() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.diskqueue.meta.dat"),
        "0\n2,5\n2111111111,0\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("t.diskqueue.000002.dat"), b"\0\0\0\x01X").unwrap();
    let start = std::time::Instant::now();
    let mut q = DiskQueue::open(dir.path(), "t", cfg(1 << 20)).unwrap();
    assert_eq!(q.depth(), 0);
    q.put([&b"cached"[..]]).unwrap();
    assert_eq!(q.peek(0, 5), vec![Bytes::from_static(b"cached")]);
    let held = q.skip_tracked(b"cached".len()).unwrap();
    assert_eq!(q.depth(), 0);
    q.release(held);
    assert_eq!(q.meta().read_file_num, 2111111111);
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn empty_removes_segments_and_numbering_continues() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(dir.path(), "t", cfg(30)).unwrap();
    let recs: Vec<Vec<u8>> = (0..5).map(|i| record(i, 10)).collect();
    q.put(recs.iter().map(|r| r.as_slice())).unwrap();
    q.empty().unwrap();
    assert_eq!(q.depth(), 0);
    assert_eq!(q.pop(), None);
    q.put([&b"new"[..]]).unwrap();
    q.sync().unwrap();
    assert_eq!(
        files(dir.path()),
        [
            "t.diskqueue.000003.dat",
            "t.diskqueue.meta.dat",
            "t.nsqrs-synced.dat"
        ]
    );
    q.delete().unwrap();
    assert!(files(dir.path()).is_empty());
}

#[test]
fn sync_job_reports_durability_by_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(dir.path(), "t", cfg(1 << 20)).unwrap();
    q.put([&b"a"[..], b"b"]).unwrap();
    let state = q.sync_state().clone();
    assert_eq!((q.write_seq(), state.synced()), (2, 0));
    let job = q.sync_job(true).unwrap();
    q.put([&b"c"[..]]).unwrap(); // after the job was taken: not covered
    job.run().unwrap();
    assert_eq!(state.synced(), 2);
    q.sync().unwrap();
    assert_eq!(state.synced(), 3);
    assert!(q.sync_job(true).is_none(), "nothing changed since");
}

#[test]
fn held_records_survive_until_released() {
    let dir = tempfile::tempdir().unwrap();
    // Two 14-byte records per 30-byte segment.
    let mut q = DiskQueue::open(dir.path(), "t", cfg(30)).unwrap();
    let recs: Vec<Vec<u8>> = (0..5).map(|i| record(i, 10)).collect();
    q.put(recs.iter().map(|r| r.as_slice())).unwrap();
    let (a, pa) = q.pop_tracked().unwrap();
    let (_b, pb) = q.pop_tracked().unwrap();
    let (c, pc) = q.pop_tracked().unwrap();
    assert_eq!((a.to_vec(), c.to_vec()), (recs[0].clone(), recs[2].clone()));
    assert_ne!(pa, pc);
    assert_eq!((q.depth(), q.held()), (2, 3));
    q.release(pb);
    // The oldest unreleased record decides where a restart resumes, and its
    // segment stays although the reader has moved past it.
    assert_eq!(q.meta().read_file_num, 0);
    assert_eq!((q.meta().read_pos, q.meta().depth), (0, 5));
    assert!(dir.path().join("t.diskqueue.000000.dat").exists());
    q.sync().unwrap();
    drop(q); // a crash with a and c unfinished
    let mut q = DiskQueue::open(dir.path(), "t", cfg(30)).unwrap();
    assert_eq!(
        drain(&mut q),
        recs,
        "a and c come back (b too: at-least-once)"
    );
}

#[test]
fn released_segments_are_deleted_and_reading_resumes_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(dir.path(), "t", cfg(30)).unwrap();
    let recs: Vec<Vec<u8>> = (0..5).map(|i| record(i, 10)).collect();
    q.put(recs.iter().map(|r| r.as_slice())).unwrap();
    let (_, pa) = q.pop_tracked().unwrap();
    let (_, pb) = q.pop_tracked().unwrap();
    let (_, pc) = q.pop_tracked().unwrap();
    q.release(pa);
    q.release(pb);
    // Segment 0 holds nothing more: deleted; a restart would resume at c.
    assert!(!dir.path().join("t.diskqueue.000000.dat").exists());
    assert_eq!((q.meta().read_file_num, q.meta().read_pos), (1, 0));
    q.release(pc);
    q.release(pc); // twice, or unknown: ignored
    assert_eq!(q.held(), 0);
    assert_eq!((q.meta().read_file_num, q.meta().read_pos), (1, 14));
    assert_eq!(q.meta().depth, 2);
}

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u16>),
    Pop(usize),
    Reopen,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec(1u16..120, 1..8).prop_map(Op::Put),
        4 => (1usize..10).prop_map(Op::Pop),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Against a `VecDeque`: clean reopens keep exact FIFO order; after a
    /// crash (no sync) records may come again but none is lost or reordered.
    #[test]
    fn behaves_like_a_fifo(ops in prop::collection::vec(op(), 1..60), file_size in 40u64..400) {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(dir.path(), "p", cfg(file_size)).unwrap();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        // Records popped since the last sync: a crash may bring them back.
        let mut since_sync: Vec<Vec<u8>> = Vec::new();
        let mut next = 0u32;
        for op in ops {
            match op {
                Op::Put(sizes) => {
                    let recs: Vec<Vec<u8>> = sizes.iter().map(|&s| { next += 1; record(next, s as usize) }).collect();
                    q.put(recs.iter().map(|r| r.as_slice())).unwrap();
                    model.extend(recs);
                }
                Op::Pop(n) => {
                    for _ in 0..n {
                        let got = q.pop().map(|b| b.to_vec());
                        prop_assert_eq!(&got, &model.pop_front());
                        since_sync.extend(got);
                    }
                }
                Op::Reopen => {
                    q.sync().unwrap();
                    since_sync.clear();
                    drop(q);
                    q = DiskQueue::open(dir.path(), "p", cfg(file_size)).unwrap();
                }
                Op::Crash => {
                    drop(q);
                    q = DiskQueue::open(dir.path(), "p", cfg(file_size)).unwrap();
                    // What comes back first is a suffix of what was popped
                    // since the last sync, then exactly the model.
                    let all: Vec<Vec<u8>> = std::iter::from_fn(|| q.pop().map(|b| b.to_vec())).collect();
                    prop_assert!(all.len() >= model.len());
                    let dup = all.len() - model.len();
                    prop_assert!(dup <= since_sync.len());
                    prop_assert_eq!(&all[..dup], &since_sync[since_sync.len() - dup..]);
                    let expected: Vec<Vec<u8>> = model.iter().cloned().collect();
                    prop_assert_eq!(&all[dup..], expected.as_slice());
                    // Put the model's records back, as a fresh start.
                    q.put(model.iter().map(|r| r.as_slice())).unwrap();
                    q.sync().unwrap();
                    since_sync.clear();
                }
            }
            prop_assert_eq!(q.depth(), model.len() as u64);
        }
    }
}

#[test]
fn skip_tracked_moves_past_cached_records_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    // Two 14-byte records per 30-byte segment.
    let mut q = DiskQueue::open(dir.path(), "t", cfg(30)).unwrap();
    let recs: Vec<Vec<u8>> = (0..5).map(|i| record(i, 10)).collect();
    q.put(recs.iter().map(|r| r.as_slice())).unwrap();
    // The owner has the first three in memory: no reading needed.
    let held: Vec<Held> = (0..3).map(|_| q.skip_tracked(10).unwrap()).collect();
    assert_eq!(q.depth(), 2);
    let (d, _) = q.pop_tracked().unwrap();
    assert_eq!(d.to_vec(), recs[3], "reading resumes at the right record");
    // Held until released; the resume position is the first held.
    assert_eq!((q.meta().read_file_num, q.meta().read_pos), (0, 0));
    for h in held {
        q.release(h);
    }
    assert_eq!((q.meta().read_file_num, q.meta().read_pos), (1, 14));
    assert!(!dir.path().join("t.diskqueue.000000.dat").exists());
}

/// Space is reserved ahead of the writes, as much as the segment holds
/// (at least `RESERVE_MIN`), never past the segment's limit; the file's
/// length is always what was written; a finished segment and a closed
/// queue keep no reservation.
#[test]
fn space_is_reserved_ahead_of_writes_and_given_back_when_a_segment_ends() {
    let storage = sim::SimStorage::new();
    let dir = Path::new("/reserve");
    let max = RESERVE_MIN * 3;
    let mut q = DiskQueue::open_in(storage.clone(), dir, "t", cfg(max)).unwrap();
    let seg = |n: u64| dir.join(format!("t.diskqueue.{n:06}.dat"));
    let len = |n: u64| storage.contents(&seg(n)).map_or(0, |c| c.len() as u64);

    q.put([&[7u8; 96][..]]).unwrap();
    assert_eq!(len(0), 100);
    assert_eq!(storage.reserved_past_end(&seg(0)), Some(RESERVE_MIN));

    // 1,000-byte records until the second segment starts.
    let mut i = 0;
    let mut grew = false;
    while storage.reserved_past_end(&seg(1)).is_none() {
        let before = len(0);
        q.put([record(i, 996).as_slice()]).unwrap();
        i += 1;
        if storage.reserved_past_end(&seg(1)).is_some() {
            break;
        }
        let (written, reserved) = (len(0), storage.reserved_past_end(&seg(0)).unwrap());
        assert_eq!(written, before + 1000, "the length is what was written");
        assert!(
            reserved <= written.max(RESERVE_MIN),
            "{reserved} past {written}"
        );
        assert!(
            written + reserved <= max,
            "reserved past the segment's limit"
        );
        grew |= reserved > RESERVE_MIN;
    }
    assert!(grew, "the reservation grows with the segment");
    assert_eq!(
        storage.reserved_past_end(&seg(0)),
        Some(0),
        "finished: given back"
    );
    assert_eq!(len(0), 100 + 1000 * (i as u64 - 1));
    assert_eq!(storage.reserved_past_end(&seg(1)), Some(RESERVE_MIN));

    drop(q);
    assert_eq!(
        storage.reserved_past_end(&seg(1)),
        Some(0),
        "closed: given back"
    );
    assert_eq!(len(1), 1000);
    let mut q = DiskQueue::open_in(storage, dir, "t", cfg(max)).unwrap();
    assert_eq!(q.pop().unwrap().to_vec(), vec![7u8; 96]);
    for n in 0..i {
        assert_eq!(q.pop().unwrap().to_vec(), record(n, 996));
    }
    assert!(q.pop().is_none());
}

/// Reserving is best effort: when it fails, writes go on as without it,
/// and what a failed reservation took is given back.
#[test]
fn a_refused_reservation_leaves_writing_as_it_was() {
    let storage = sim::SimStorage::new();
    storage.refuse_reserve();
    let dir = Path::new("/reserve");
    let mut q = DiskQueue::open_in(storage.clone(), dir, "t", cfg(3000)).unwrap();
    let recs: Vec<Vec<u8>> = (0..10).map(|i| record(i, 996)).collect();
    q.put(recs.iter().map(|r| r.as_slice())).unwrap();
    for n in 0..4 {
        let seg = dir.join(format!("t.diskqueue.{n:06}.dat"));
        assert_eq!(storage.reserved_past_end(&seg), Some(0));
    }
    let got: Vec<Vec<u8>> = std::iter::from_fn(|| q.pop()).map(|b| b.to_vec()).collect();
    assert_eq!(got, recs);
}

/// On a filling disk a queue reserves at most a small share of the free
/// space, and nothing once little is left; writing goes on either way.
#[test]
fn reservations_take_a_small_share_of_the_free_space() {
    let storage = sim::SimStorage::new();
    let dir = Path::new("/reserve");
    let seg = dir.join("t.diskqueue.000000.dat");
    let cap = 2 * RESERVE_MIN;
    storage.set_free_space(Some(cap * RESERVE_SHARE_OF_FREE));
    let mut q = DiskQueue::open_in(storage.clone(), dir, "t", cfg(RESERVE_MAX * 4)).unwrap();
    let mut most = 0;
    let mut i = 0;
    // 2 MB: without the cap the reservation would grow to 2 MB.
    while i < 2000 {
        q.put([record(i, 996).as_slice()]).unwrap();
        i += 1;
        most = most.max(storage.reserved_past_end(&seg).unwrap());
    }
    assert_eq!(
        most, cap,
        "grows up to the share of the free space, no further"
    );

    storage.set_free_space(Some(RESERVE_MIN * RESERVE_SHARE_OF_FREE - 1));
    let used_up = i + (cap / 1000) as u32 + 1;
    while i < used_up + 1000 {
        q.put([record(i, 996).as_slice()]).unwrap();
        i += 1;
        if i > used_up {
            assert_eq!(storage.reserved_past_end(&seg), Some(0), "record {i}");
        }
    }
    let got: Vec<Vec<u8>> = std::iter::from_fn(|| q.pop()).map(|b| b.to_vec()).collect();
    assert_eq!(got.len(), i as usize);
    assert!(got
        .iter()
        .enumerate()
        .all(|(n, r)| *r == record(n as u32, 996)));
}

/// A write that fails part-way (the disk fills up during it) leaves
/// nothing of itself: its publish was refused, so a restart must not find
/// its records. Without space reserved ahead, nothing else cuts them.
#[test]
fn a_write_failing_part_way_leaves_nothing_behind() {
    let storage = sim::SimStorage::new();
    storage.set_free_space(Some(0));
    let dir = Path::new("/partial");
    let seg = dir.join("t.diskqueue.000000.dat");
    let mut q = DiskQueue::open_in(storage.clone(), dir, "t", cfg(1 << 20)).unwrap();
    q.put([record(0, 996).as_slice()]).unwrap();
    storage.set_space_left(Some(2500));
    let refused: Vec<Vec<u8>> = (1..5).map(|i| record(i, 996)).collect();
    assert!(q.put(refused.iter().map(|r| r.as_slice())).is_err());
    assert_eq!(storage.contents(&seg).unwrap().len(), 1000);
    drop(q);

    storage.set_space_left(None);
    let mut q = DiskQueue::open_in(storage.clone(), dir, "t", cfg(1 << 20)).unwrap();
    q.put([record(5, 996).as_slice()]).unwrap();
    let got: Vec<Vec<u8>> = std::iter::from_fn(|| q.pop()).map(|b| b.to_vec()).collect();
    assert_eq!(got, vec![record(0, 996), record(5, 996)]);
}

/// A batch that would cross a segment's end but fits in one goes whole
/// into the next segment: on a disk too full for that segment, nothing of
/// it is stored (its first records used to stay in the old one, and a
/// retried MPUB then delivered them twice). A batch larger than a segment
/// is still spread over several.
#[test]
fn a_batch_is_not_split_across_segments_when_it_fits_in_one() {
    let storage = sim::SimStorage::new();
    let dir = Path::new("/whole");
    let mut q = DiskQueue::open_in(storage.clone(), dir, "t", cfg(2500)).unwrap();
    q.put([record(0, 996).as_slice()]).unwrap();
    // Segment 0 has room for one more record, the disk for one more too.
    storage.set_space_left(Some(1000));
    let refused: Vec<Vec<u8>> = (1..3).map(|i| record(i, 996)).collect();
    assert!(q.put(refused.iter().map(|r| r.as_slice())).is_err());
    assert_eq!(q.depth(), 1);
    storage.set_space_left(None);
    q.put(refused.iter().map(|r| r.as_slice())).unwrap();
    assert_eq!(
        storage
            .contents(&dir.join("t.diskqueue.000000.dat"))
            .unwrap()
            .len(),
        1000
    );
    assert_eq!(
        storage
            .contents(&dir.join("t.diskqueue.000001.dat"))
            .unwrap()
            .len(),
        2000
    );
    // Larger than a segment: spread over several, as before.
    let big: Vec<Vec<u8>> = (3..7).map(|i| record(i, 996)).collect();
    q.put(big.iter().map(|r| r.as_slice())).unwrap();
    drop(q);
    let mut q = DiskQueue::open_in(storage.clone(), dir, "t", cfg(2500)).unwrap();
    let got: Vec<Vec<u8>> = std::iter::from_fn(|| q.pop()).map(|b| b.to_vec()).collect();
    let want: Vec<Vec<u8>> = (0..7).map(|i| record(i, 996)).collect();
    assert_eq!(got, want);
}

/// A write failing on a full disk gives back what the queue reserved (for
/// the other queues); once there is space, writing goes on.
#[test]
fn a_full_disk_gets_the_reserved_space_back() {
    let storage = sim::SimStorage::new();
    let dir = Path::new("/reserve");
    let seg = dir.join("t.diskqueue.000000.dat");
    let mut q = DiskQueue::open_in(storage.clone(), dir, "t", cfg(1 << 20)).unwrap();
    q.put([record(0, 996).as_slice()]).unwrap();
    assert_eq!(storage.reserved_past_end(&seg), Some(RESERVE_MIN));
    storage.set_full(true);
    assert!(q.put([record(1, 996).as_slice()]).is_err());
    assert_eq!(storage.reserved_past_end(&seg), Some(0));
    storage.set_full(false);
    q.put([record(2, 996).as_slice()]).unwrap();
    let got: Vec<Vec<u8>> = std::iter::from_fn(|| q.pop()).map(|b| b.to_vec()).collect();
    assert_eq!(got, vec![record(0, 996), record(2, 996)]);
}

/// A queue that opens with nothing readable left but a damaged tail in a
/// segment before the write segment: the owner caches what is written
/// next and skips past it. The skipped records' positions must be theirs,
/// not the damaged bytes': a finished record must not come back after a
/// restart (it did, the positions lagging one record behind).
#[test]
fn skipping_past_a_damaged_tail_keeps_finished_records_finished() {
    for torn in [&b"\0\0\0"[..], b"\0\0\0\x05abc", b"\xff\xff\xff\xffgarbage"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.diskqueue.meta.dat"), "0\n0,0\n1,0\n").unwrap();
        std::fs::write(dir.path().join("t.diskqueue.000000.dat"), torn).unwrap();
        let mut q = DiskQueue::open(dir.path(), "t", cfg(1 << 20)).unwrap();
        assert_eq!(q.depth(), 0, "{torn:?}");
        q.put([&b"first"[..], b"second"]).unwrap();
        let first = q.skip_tracked(b"first".len()).unwrap();
        let second = q.skip_tracked(b"second".len()).unwrap();
        assert_eq!(q.depth(), 0);
        q.release(first); // finished
        let _ = second; // in flight when the process dies
        q.sync().unwrap();
        drop(q);
        let mut q = DiskQueue::open(dir.path(), "t", cfg(1 << 20)).unwrap();
        assert_eq!(drain(&mut q), vec![b"second".to_vec()], "{torn:?}");
    }
}

#[test]
fn skipped_positions_are_not_delivered_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(dir.path(), "t", cfg(1000)).unwrap();
    let recs: Vec<Vec<u8>> = (0..4).map(|i| record(i, 10)).collect();
    q.put(recs.iter().map(|r| r.as_slice())).unwrap();
    let (_, first) = q.pop_tracked().unwrap();
    let (_, second) = q.pop_tracked().unwrap();
    let moved = q.held_position(second).unwrap();
    q.release(second); // the owner stored it elsewhere
    q.sync().unwrap();
    drop(q); // a crash with the first still held
    let _ = first;
    let mut q = DiskQueue::open(dir.path(), "t", cfg(1000)).unwrap();
    q.skip_positions([moved]);
    let got = drain(&mut q);
    assert_eq!(got, vec![recs[0].clone(), recs[2].clone(), recs[3].clone()]);
}

#[test]
#[ignore]
fn bench_hot_path() {
    let dir = tempfile::tempdir_in("/dev/shm").unwrap();
    let cfg = Config {
        max_bytes_per_file: 100 << 20,
        min_record_size: 1,
        max_record_size: 1 << 20,
        sync_every: u64::MAX,
    };
    let mut q = DiskQueue::open(dir.path(), "b", cfg).unwrap();
    let rec = vec![7u8; 200];
    let n = 2_000_000;
    for round in 0..3 {
        let t = std::time::Instant::now();
        for _ in 0..n {
            q.put([rec.as_slice()]).unwrap();
        }
        let put = t.elapsed();
        let t = std::time::Instant::now();
        let mut got = 0;
        while let Some((r, h)) = q.pop_tracked() {
            got += r.len();
            q.release(h);
        }
        let pop = t.elapsed();
        assert_eq!(got, n * 200);
        eprintln!(
            "round {round}: put {:?}/op, pop {:?}/op",
            put / n as u32,
            pop / n as u32
        );
    }
}

/// A queue deferring its removals, whose records (five, over three
/// two-record segments) were all read.
fn read_through_with_deferred_removals(dir: &Path) -> DiskQueue {
    let mut q = DiskQueue::open(dir, "t", cfg(30)).unwrap();
    q.defer_removals();
    let recs: Vec<Vec<u8>> = (0..5).map(|i| record(i, 10)).collect();
    q.put(recs.iter().map(|r| r.as_slice())).unwrap();
    assert_eq!(drain(&mut q).len(), 5);
    q
}

#[test]
fn deferred_removals_rename_at_once_and_remove_when_run() {
    let dir = tempfile::tempdir().unwrap();
    // Two records per segment.
    let mut q = read_through_with_deferred_removals(dir.path());
    // The read segments' names are free; their files wait, renamed.
    let waiting = files(dir.path());
    assert!(!waiting.contains(&"t.diskqueue.000000.dat".to_string()));
    assert!(waiting.contains(&"t.diskqueue.000000.dat.deleting".to_string()));
    let removals = q.take_removals();
    assert!(!removals.is_empty());
    removals.run();
    assert!(files(dir.path()).iter().all(|f| !f.ends_with(".deleting")));
    assert!(q.take_removals().is_empty());
}

#[test]
fn removals_left_by_a_crash_are_done_on_opening() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = read_through_with_deferred_removals(dir.path());
    q.sync().unwrap();
    // As if the process died before removing: no drop, no run (and a new
    // process lists the directory afresh).
    std::mem::forget(q);
    Fs.forget_listing(dir.path());
    assert!(files(dir.path()).iter().any(|f| f.ends_with(".deleting")));
    // Another queue's files are not this one's to remove.
    std::fs::write(dir.path().join("u.diskqueue.000000.dat.deleting"), b"").unwrap();
    let q = DiskQueue::open(dir.path(), "t", cfg(30)).unwrap();
    let left = files(dir.path());
    assert!(
        left.iter()
            .all(|f| !f.starts_with("t.") || !f.ends_with(".deleting")),
        "{left:?}"
    );
    assert!(left.contains(&"u.diskqueue.000000.dat.deleting".to_string()));
    drop(q);
}

#[test]
fn a_closed_queue_does_its_deferred_removals() {
    let dir = tempfile::tempdir().unwrap();
    let q = read_through_with_deferred_removals(dir.path());
    drop(q);
    assert!(files(dir.path()).iter().all(|f| !f.ends_with(".deleting")));
}

#[derive(Debug, Clone)]
enum AheadOp {
    Put(Vec<u16>),
    Pop(usize),
    /// Plan a read-ahead (kept until finished).
    Plan,
    /// Run and hand back the planned read-ahead at this index (modulo).
    Finish(usize),
}

fn ahead_op() -> impl Strategy<Value = AheadOp> {
    prop_oneof![
        3 => prop::collection::vec(1u16..120, 1..8).prop_map(AheadOp::Put),
        1 => prop::collection::vec(4000u16..9000, 1..3).prop_map(AheadOp::Put),
        4 => (1usize..10).prop_map(AheadOp::Pop),
        2 => Just(AheadOp::Plan),
        2 => (0usize..4).prop_map(AheadOp::Finish),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Read-aheads planned, run and handed back in any order, late or
    /// stale, never change what is read: the queue stays a FIFO.
    #[test]
    fn read_ahead_never_changes_what_is_read(
        ops in prop::collection::vec(ahead_op(), 1..80),
        file_size in 40u64..20_000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config { max_record_size: 10_000, ..cfg(file_size) };
        let mut q = DiskQueue::open(dir.path(), "p", cfg).unwrap();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut planned = Vec::new();
        let mut next = 0u32;
        for op in ops {
            match op {
                AheadOp::Put(sizes) => {
                    let recs: Vec<Vec<u8>> = sizes.iter().map(|&s| { next += 1; record(next, s as usize) }).collect();
                    q.put(recs.iter().map(|r| r.as_slice())).unwrap();
                    model.extend(recs);
                }
                AheadOp::Pop(n) => {
                    for _ in 0..n {
                        let got = q.pop_tracked().map(|(b, held)| {
                            q.release(held);
                            b.to_vec()
                        });
                        prop_assert_eq!(&got, &model.pop_front());
                    }
                }
                AheadOp::Plan => planned.extend(q.plan_read_ahead()),
                AheadOp::Finish(i) if !planned.is_empty() => {
                    let mut ahead: ReadAhead<std::fs::File> = planned.remove(i % planned.len());
                    ahead.run();
                    q.finish_read_ahead(ahead);
                }
                AheadOp::Finish(_) => {}
            }
            prop_assert_eq!(q.depth(), model.len() as u64);
        }
        let rest: Vec<Vec<u8>> = drain(&mut q);
        prop_assert_eq!(rest, model.into_iter().collect::<Vec<_>>());
    }
}

#[test]
fn read_ahead_joins_the_buffer_and_a_stale_one_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(dir.path(), "t", cfg(1 << 30)).unwrap();
    let recs: Vec<Vec<u8>> = (0..5000).map(|i| record(i, 200)).collect();
    q.put(recs.iter().map(|r| r.as_slice())).unwrap();
    let mut read = Vec::new();
    read.extend(q.pop());
    // The buffer holds one chunk: low, so a read-ahead is planned, once.
    let mut ahead = q.plan_read_ahead().expect("planned");
    assert!(q.plan_read_ahead().is_none(), "one at a time");
    ahead.run();
    q.finish_read_ahead(ahead);
    assert!(q.reader.as_ref().unwrap().next.is_some(), "kept");
    // Another is planned only once the bytes kept were joined and used.
    assert!(q.plan_read_ahead().is_none());
    // (The first read filled 64 kB; 800 records of 204 bytes go past it
    // and leave less than the low-water mark.)
    for _ in 0..800 {
        read.extend(q.pop());
    }
    assert!(q.reader.as_ref().unwrap().next.is_none(), "joined");

    // Planned, then overtaken by reading: its bytes are not kept.
    let mut stale = q.plan_read_ahead().expect("planned");
    for _ in 0..1000 {
        read.extend(q.pop());
    }
    stale.run();
    q.finish_read_ahead(stale);
    assert!(q.reader.as_ref().unwrap().next.is_none(), "dropped");
    let mut read: Vec<Vec<u8>> = read.iter().map(|b| b.to_vec()).collect();
    read.extend(drain(&mut q));
    assert_eq!(read, recs);
}
