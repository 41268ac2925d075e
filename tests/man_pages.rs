//! The man pages in man/ are generated from the clap definitions; this test
//! fails when they are stale. Regenerate with:
//! `UPDATE_MAN=1 cargo test --test man_pages`.

use std::path::PathBuf;

fn render(cmd: clap::Command) -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .expect("rendering to memory cannot fail");
    out
}

#[test]
fn man_pages_are_current() {
    use clap::CommandFactory;
    let pages = [
        ("nsqd", nsq::nsqd::Options::command()),
        ("nsq-bench", nsq::bench::BenchArgs::command()),
        ("nsqlookupd", nsq::lookupd::Options::command()),
    ];
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("man");
    let update = std::env::var_os("UPDATE_MAN").is_some();
    let mut stale = Vec::new();
    for (name, cmd) in pages {
        let path = dir.join(format!("{name}.1"));
        let fresh = render(cmd);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &fresh).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(&fresh[..]) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale man pages {stale:?}: run `UPDATE_MAN=1 cargo test --test man_pages`"
    );
}
