//! The web UI: one page, a stylesheet and a script, written by hand and
//! built into the binary (no JavaScript build step, nothing fetched at run
//! time). The page learns its settings from a JSON block filled in here.

use super::options::Options;

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const FAVICON: &str = include_str!("assets/favicon.svg");

/// A built-in file by name: its bytes and content type.
pub fn get(name: &str) -> Option<(&'static [u8], &'static str)> {
    let bytes = match name {
        "app.js" => APP_JS,
        "app.css" => APP_CSS,
        "favicon.svg" => FAVICON,
        _ => return None,
    };
    Some((bytes.as_bytes(), content_type(name)))
}

pub fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("html") => "text/html; charset=utf-8",
        Some("json" | "map") => "application/json",
        _ => "application/octet-stream",
    }
}

/// Escape text for an HTML attribute or element.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page, with the settings the script needs.
pub fn index_html(opts: &Options, is_admin: bool) -> String {
    let base = if opts.base_path.ends_with('/') {
        opts.base_path.clone()
    } else {
        format!("{}/", opts.base_path)
    };
    let config = serde_json::json!({
        "base": base,
        "version": crate::protocol::NSQ_VERSION,
        "build": env!("CARGO_PKG_VERSION"),
        "lookupd": opts.lookupd_http_addresses,
        "nsqd": opts.nsqd_http_addresses,
        "is_admin": is_admin,
        "sample_interval_ms": opts.sample_interval.as_millis() as u64,
        "history_ms": opts.history.as_millis() as u64,
    });
    // `</` cannot end the script block early once escaped.
    let config = config.to_string().replace("</", "<\\/");
    INDEX
        .replace("{{BASE}}", &html_escape(&base))
        .replace("{{CONFIG}}", &config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn page_carries_its_settings() {
        let opts =
            Options::parse_from(["nsqadmin", "--lookupd-http-address=a:1", "--base-path=/adm"]);
        let mut opts = opts;
        opts.base_path = "/adm".into();
        opts.admin_users = vec!["</script>".into()];
        let html = index_html(&opts, false);
        assert!(html.contains(r#"href="/adm/static/app.css""#));
        assert!(html.contains(r#""base":"/adm/""#));
        assert!(html.contains(r#""is_admin":false"#));
        assert!(!html.contains("{{"));
        assert_eq!(get("app.js").unwrap().1, "text/javascript; charset=utf-8");
        assert!(get("../etc/passwd").is_none());
    }
}
