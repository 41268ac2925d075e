//! NSQ's on-disk formats, parsed strictly, for tests that look at the files
//! nsqd leaves: go-diskqueue's data segments (`int32 BE length`, then a
//! message: `timestamp i64 BE | attempts u16 BE | 16-byte hex ID | body`)
//! and metadata (`depth\nreadFile,readPos\nwriteFile,writePos\n`), and
//! `nsqd.dat` as Go's `json.Marshal` writes it. Anything off fails the test.

use super::{Nsqd, DEADLINE};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One disk queue record: `int32 BE length | timestamp i64 BE | attempts u16
/// BE | 16-byte ASCII hex ID | body`, where length covers everything after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub timestamp: i64,
    pub attempts: u16,
    pub id: [u8; 16],
    pub body: Vec<u8>,
}

impl Record {
    pub fn new(id: &str, timestamp: i64, attempts: u16, body: &[u8]) -> Record {
        Record {
            timestamp,
            attempts,
            id: id.as_bytes().try_into().expect("16-byte ID"),
            body: body.to_vec(),
        }
    }

    /// Bytes it takes in a data file, length prefix included.
    pub fn size(&self) -> usize {
        4 + 26 + self.body.len()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size());
        out.extend_from_slice(&((26 + self.body.len()) as i32).to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.attempts.to_be_bytes());
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&self.body);
        out
    }
}

/// Every record of `data`; anything else (torn record, length out of range)
/// fails the test.
pub fn parse_records(data: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        assert!(rest.len() >= 4, "torn length prefix at the end of the file");
        let len = i32::from_be_bytes(rest[..4].try_into().unwrap());
        assert!(
            len >= 26,
            "record length {len} below 26 at offset {}",
            data.len() - rest.len()
        );
        let len = len as usize;
        assert!(rest.len() >= 4 + len, "torn record at the end of the file");
        let rec = &rest[4..4 + len];
        out.push(Record {
            timestamp: i64::from_be_bytes(rec[..8].try_into().unwrap()),
            attempts: u16::from_be_bytes([rec[8], rec[9]]),
            id: rec[10..26].try_into().unwrap(),
            body: rec[26..].to_vec(),
        });
        rest = &rest[4 + len..];
    }
    out
}

/// A `.diskqueue.meta.dat` file: exactly
/// `<depth>\n<readFileNum>,<readPos>\n<writeFileNum>,<writePos>\n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub depth: u64,
    pub read: (u64, u64),
    pub write: (u64, u64),
}

pub fn parse_meta(text: &str) -> Meta {
    let num = |s: &str| -> u64 {
        assert!(
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
            "meta file {text:?}: {s:?} is not a number"
        );
        s.parse().unwrap()
    };
    let pair = |s: &str| {
        let (a, b) = s
            .split_once(',')
            .unwrap_or_else(|| panic!("meta file {text:?}: no comma in {s:?}"));
        (num(a), num(b))
    };
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(
        lines.len() == 4 && lines[3].is_empty(),
        "meta file is not three newline-terminated lines: {text:?}"
    );
    Meta {
        depth: num(lines[0]),
        read: pair(lines[1]),
        write: pair(lines[2]),
    }
}

pub fn segment(dir: &Path, queue: &str, n: u64) -> PathBuf {
    dir.join(format!("{queue}.diskqueue.{n:06}.dat"))
}

pub fn meta_path(dir: &Path, queue: &str) -> PathBuf {
    dir.join(format!("{queue}.diskqueue.meta.dat"))
}

/// The queue's data files present in `dir`, in file-number order.
pub fn segments(dir: &Path, queue: &str) -> Vec<PathBuf> {
    let prefix = format!("{queue}.diskqueue.");
    let mut found: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let num = name.strip_prefix(&prefix)?.strip_suffix(".dat")?;
            let n = num.parse().ok().filter(|_| num.len() >= 6)?;
            Some((n, p))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

/// The meta file of a cleanly stopped queue and every unread record, in
/// order, from the read position to the write position. After a clean stop
/// the write file ends exactly at the recorded write position, and the
/// recorded depth is the number of unread records.
pub fn read_queue(dir: &Path, queue: &str) -> (Meta, Vec<Record>) {
    let meta = fs::read_to_string(meta_path(dir, queue))
        .unwrap_or_else(|e| panic!("{queue}: meta file: {e}; files: {:?}", file_names(dir)));
    let meta = parse_meta(&meta);
    let (rfn, rpos) = meta.read;
    let (wfn, wpos) = meta.write;
    assert!((rfn, rpos) <= (wfn, wpos), "{queue}: {meta:?}");
    let mut records = Vec::new();
    for n in rfn..=wfn {
        let data = fs::read(segment(dir, queue, n))
            .unwrap_or_else(|e| panic!("{queue}: data file {n} ({meta:?}): {e}"));
        if n == wfn {
            assert_eq!(data.len() as u64, wpos, "{queue}: write file size vs meta");
        }
        let start = if n == rfn { rpos as usize } else { 0 };
        records.extend(parse_records(&data[start..]));
    }
    assert_eq!(
        meta.depth,
        records.len() as u64,
        "{queue}: meta depth vs unread records"
    );
    (meta, records)
}

/// One topic of `nsqd.dat`, as NSQ's Go structs hold it (a nil channel
/// slice is `None`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TopicMeta {
    pub name: String,
    pub paused: bool,
    pub channels: Option<Vec<(String, bool)>>,
}

pub fn topic_meta(name: &str, paused: bool, channels: Option<&[(&str, bool)]>) -> TopicMeta {
    TopicMeta {
        name: name.into(),
        paused,
        channels: channels.map(|cs| cs.iter().map(|(n, p)| (n.to_string(), *p)).collect()),
    }
}

/// What Go's `json.Marshal` makes of NSQ's metadata struct: compact, keys in
/// struct order, nil slices as `null` (reference 3.2).
pub fn render_nsqd_dat(topics: &[TopicMeta]) -> String {
    let topics = if topics.is_empty() {
        "null".to_string()
    } else {
        let items: Vec<String> = topics
            .iter()
            .map(|t| {
                let channels = match &t.channels {
                    None => "null".to_string(),
                    Some(cs) => {
                        let cs: Vec<String> = cs
                            .iter()
                            .map(|(n, p)| format!(r#"{{"name":"{n}","paused":{p}}}"#))
                            .collect();
                        format!("[{}]", cs.join(","))
                    }
                };
                format!(
                    r#"{{"name":"{}","paused":{},"channels":{channels}}}"#,
                    t.name, t.paused
                )
            })
            .collect();
        format!("[{}]", items.join(","))
    };
    format!(r#"{{"topics":{topics},"version":"1.3.0"}}"#)
}

/// Parse `nsqd.dat`, insist it is byte for byte what NSQ would write for the
/// topology it describes (in the file's own order, which is unspecified), and
/// return that topology sorted for comparison.
pub fn read_nsqd_dat(dir: &Path) -> Vec<TopicMeta> {
    let text = fs::read_to_string(dir.join("nsqd.dat")).expect("nsqd.dat");
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("nsqd.dat ({e}): {text}"));
    let name = |x: &serde_json::Value| x["name"].as_str().expect("name").to_string();
    let paused = |x: &serde_json::Value| x["paused"].as_bool().expect("paused");
    let mut topics: Vec<TopicMeta> = v["topics"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| TopicMeta {
                    name: name(t),
                    paused: paused(t),
                    channels: t["channels"]
                        .as_array()
                        .map(|cs| cs.iter().map(|c| (name(c), paused(c))).collect()),
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        text,
        render_nsqd_dat(&topics),
        "nsqd.dat is not in NSQ's form"
    );
    for t in &mut topics {
        if let Some(cs) = &mut t.channels {
            cs.sort();
        }
    }
    topics.sort();
    topics
}

/// Poll `nsqd.dat` until it describes `expected` (creations may be persisted
/// asynchronously); on timeout show the last content.
pub fn wait_for_nsqd_dat(dir: &Path, expected: &[TopicMeta]) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if dir.join("nsqd.dat").exists() && read_nsqd_dat(dir) == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nsqd.dat never described {expected:?}; last content: {:?}",
            fs::read_to_string(dir.join("nsqd.dat"))
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Topics, channels and pause flags as `/stats` reports them, sorted, in the
/// same shape (a topic without channels reported as `None`).
pub fn stats_topology(nsqd: &Nsqd) -> Vec<TopicMeta> {
    let stats = nsqd.stats();
    let mut topics: Vec<TopicMeta> = stats["topics"]
        .as_array()
        .expect("topics")
        .iter()
        .map(|t| {
            let mut cs: Vec<(String, bool)> = t["channels"]
                .as_array()
                .expect("channels")
                .iter()
                .map(|c| {
                    (
                        c["channel_name"].as_str().unwrap().to_string(),
                        c["paused"].as_bool().unwrap(),
                    )
                })
                .collect();
            cs.sort();
            TopicMeta {
                name: t["topic_name"].as_str().unwrap().to_string(),
                paused: t["paused"].as_bool().unwrap(),
                channels: (!cs.is_empty()).then_some(cs),
            }
        })
        .collect();
    topics.sort();
    topics
}

pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
