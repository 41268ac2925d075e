//! nsqd's TLS: the server configuration built from `--tls-cert`,
//! `--tls-key`, `--tls-root-ca-file`, `--tls-client-auth-policy` and
//! `--tls-min-version`, used for IDENTIFY's `tls_v1` upgrade and the HTTPS
//! listener. rustls, no OpenSSL.

use super::Options;
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, UnixTime};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// The TLS server configuration, or `None` without a certificate and key.
pub fn server_config(opts: &Options) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    if opts.tls_cert.is_empty() && opts.tls_key.is_empty() {
        return Ok(None);
    }
    if opts.tls_cert.is_empty() || opts.tls_key.is_empty() {
        return Err("--tls-cert and --tls-key must be given together".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = crate::pem::certificates(&opts.tls_cert)?;
    let key = crate::pem::private_key(&opts.tls_key)?;
    // rustls speaks TLS 1.2 and 1.3 only: tls1.0 and tls1.1 mean "1.2 up".
    let versions: &[&rustls::SupportedProtocolVersion] = match opts.tls_min_version.as_str() {
        "tls1.3" => &[&rustls::version::TLS13],
        _ => &[&rustls::version::TLS12, &rustls::version::TLS13],
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS configuration: {e}"))?;
    let builder = match opts.tls_client_auth_policy.as_str() {
        "" => builder.with_no_client_auth(),
        "require" => builder.with_client_cert_verifier(Arc::new(AnyClientCert { provider })),
        "require-verify" => {
            if opts.tls_root_ca_file.is_empty() {
                return Err(
                    "--tls-client-auth-policy=require-verify needs --tls-root-ca-file".into(),
                );
            }
            let mut roots = rustls::RootCertStore::empty();
            for cert in crate::pem::certificates(&opts.tls_root_ca_file)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("--tls-root-ca-file {}: {e}", opts.tls_root_ca_file))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| format!("--tls-root-ca-file {}: {e}", opts.tls_root_ca_file))?;
            builder.with_client_cert_verifier(verifier)
        }
        other => {
            return Err(format!(
                "--tls-client-auth-policy must be require or require-verify, not {other:?}"
            ))
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    Ok(Some(Arc::new(config)))
}

/// `--tls-client-auth-policy=require`: a client certificate must be
/// presented (and prove its key), but is not checked against any CA, as
/// Go's `RequireAnyClientCert`.
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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

/// How a TLS session is reported in `/stats`.
pub fn describe(conn: &rustls::ServerConnection) -> (String, String) {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS1.2",
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS1.3",
        _ => "",
    };
    let suite = conn
        .negotiated_cipher_suite()
        .and_then(|s| s.suite().as_str())
        .unwrap_or("")
        .to_string();
    (version.to_string(), suite)
}
