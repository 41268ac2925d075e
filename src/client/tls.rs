//! TLS for the client side (rustls): how a tool trusts nsqd, and whether
//! it presents a certificate of its own.

use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{DigitallySignedStruct, SignatureScheme};

/// What the TLS flags say.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM CA bundle to trust (default: the system's roots).
    pub root_ca_file: Option<String>,
    /// PEM certificate and key to present to nsqd.
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    /// Accept any server certificate (testing only).
    pub insecure_skip_verify: bool,
}

/// The rustls configuration for these options.
pub fn client_config(opts: &TlsOptions) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if opts.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert { provider }))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &opts.root_ca_file {
            Some(path) => {
                for cert in crate::pem::certificates(path)? {
                    roots.add(cert).map_err(|e| format!("{path}: {e}"))?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                for cert in native.certs {
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    return Err(
                        "no trusted root certificates found: give --tls-root-ca-file".into(),
                    );
                }
            }
        }
        builder.with_root_certificates(roots)
    };
    let config = match (&opts.cert_file, &opts.key_file) {
        (Some(cert), Some(key)) => {
            let certs = crate::pem::certificates(cert)?;
            let key_der = crate::pem::private_key(key)?;
            builder
                .with_client_auth_cert(certs, key_der)
                .map_err(|e| format!("{cert}: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("--tls-cert and --tls-key must be given together".into()),
    };
    Ok(Arc::new(config))
}

/// The name to check nsqd's certificate against: the host of `addr`, or
/// `localhost` for a unix socket path.
pub fn server_name(addr: &str) -> Result<ServerName<'static>, String> {
    let host = match crate::listen::endpoint(addr) {
        crate::listen::Endpoint::Unix(_) => "localhost",
        crate::listen::Endpoint::Tcp(_) => match addr.rsplit_once(':') {
            Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
            None => addr,
        },
    };
    ServerName::try_from(host.to_string()).map_err(|e| format!("{host}: {e}"))
}

/// `--tls-insecure-skip-verify`: any certificate is accepted (signatures
/// are still checked, so the session is encrypted, not authenticated).
#[derive(Debug)]
struct AnyServerCert {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
