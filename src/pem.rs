//! Reading PEM files for TLS (server and client alike), with errors that
//! name the file.

use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Every certificate in `path`; at least one.
pub fn certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let certs: Result<Vec<_>, _> =
        rustls_pemfile::certs(&mut std::io::BufReader::new(file)).collect();
    let certs = certs.map_err(|e| format!("{path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{path}: no PEM certificate found"));
    }
    Ok(certs)
}

/// The first private key in `path`.
pub fn private_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    rustls_pemfile::private_key(&mut std::io::BufReader::new(file))
        .map_err(|e| format!("{path}: {e}"))?
        .ok_or_else(|| format!("{path}: no PEM private key found"))
}
