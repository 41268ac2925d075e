//! The man pages in man/ and the shell completions in completions/ are
//! generated from the clap definitions; these tests fail when they are
//! stale. Regenerate both with:
//! `UPDATE_MAN=1 cargo test --test it man_pages`.

use clap::CommandFactory;
use std::path::PathBuf;

/// Every binary with its flag definitions.
fn commands() -> Vec<(&'static str, clap::Command)> {
    vec![
        ("nsqd", nsq::nsqd::Options::command()),
        ("nsqlookupd", nsq::lookupd::Options::command()),
        ("nsq-pub", nsq::tools::publish::PubArgs::command()),
        ("nsq-tail", nsq::tools::tail::TailArgs::command()),
        ("nsq-stat", nsq::tools::stat::StatArgs::command()),
        ("nsq-to-file", nsq::tools::to_file::ToFileArgs::command()),
        ("nsq-to-http", nsq::tools::to_http::ToHttpArgs::command()),
        ("nsq-to-nsq", nsq::tools::to_nsq::ToNsqArgs::command()),
        ("nsq-bench", nsq::bench::BenchArgs::command()),
        ("nsqadmin", nsq::admin::Options::command()),
    ]
}

/// Write `fresh` to `path` (updating) or report it stale.
fn check(path: PathBuf, fresh: Vec<u8>, stale: &mut Vec<String>) {
    if std::env::var_os("UPDATE_MAN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &fresh).unwrap();
    } else if std::fs::read(&path).ok().as_deref() != Some(&fresh[..]) {
        stale.push(path.display().to_string());
    }
}

#[test]
fn man_pages_are_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("man");
    let mut stale = Vec::new();
    for (name, cmd) in commands() {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut out)
            .expect("rendering to memory cannot fail");
        check(dir.join(format!("{name}.1")), out, &mut stale);
    }
    assert!(
        stale.is_empty(),
        "stale man pages {stale:?}: run `UPDATE_MAN=1 cargo test --test it man_pages`"
    );
}

#[test]
fn shell_completions_are_current() {
    use clap_complete::Shell;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("completions");
    let mut stale = Vec::new();
    for (name, cmd) in commands() {
        for (shell, file) in [
            (Shell::Bash, format!("{name}.bash")),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), name, &mut out);
            check(dir.join(file), out, &mut stale);
        }
    }
    assert!(
        stale.is_empty(),
        "stale completions {stale:?}: run `UPDATE_MAN=1 cargo test --test it man_pages`"
    );
}
