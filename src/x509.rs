//! The one thing nsqd reads from a client certificate: its subject's
//! common name, which AUTH passes to the auth server as `common_name`.
//!
//! A few lines of DER walking instead of a full X.509 parser: the
//! certificate has already been accepted (or verified) by rustls, and all
//! that is needed is one attribute of one field. As Go's `pkix.Name`, the
//! last common name of the subject wins; a certificate that cannot be read
//! this way gives none (an empty `common_name`, as without a certificate).

/// The subject common name of a DER certificate, if it has one.
pub fn common_name(cert: &[u8]) -> Option<String> {
    let (tag, certificate, _) = tlv(cert)?;
    expect(tag, SEQUENCE)?;
    let (tag, mut tbs, _) = tlv(certificate)?;
    expect(tag, SEQUENCE)?;
    // [0] version (optional), serial, signature algorithm, issuer, validity.
    let (tag, _, rest) = tlv(tbs)?;
    if tag == 0xa0 {
        tbs = rest;
    }
    for _ in 0..4 {
        tbs = tlv(tbs)?.2;
    }
    let (tag, mut subject, _) = tlv(tbs)?;
    expect(tag, SEQUENCE)?;
    let mut found = None;
    // SEQUENCE OF SET OF SEQUENCE { type OID, value }
    while !subject.is_empty() {
        let (tag, mut rdn, rest) = tlv(subject)?;
        expect(tag, SET)?;
        subject = rest;
        while !rdn.is_empty() {
            let (tag, attribute, rest) = tlv(rdn)?;
            expect(tag, SEQUENCE)?;
            rdn = rest;
            let (tag, oid, value) = tlv(attribute)?;
            if tag == OID && oid == COMMON_NAME {
                let (tag, value, _) = tlv(value)?;
                if let Some(name) = decode_string(tag, value) {
                    found = Some(name);
                }
            }
        }
    }
    found
}

/// The common name of the first certificate a TLS peer presented, or "".
pub fn peer_common_name(session: &tokio_rustls::rustls::CommonState) -> String {
    session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|cert| common_name(cert))
        .unwrap_or_default()
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// 2.5.4.3, id-at-commonName.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

fn expect(tag: u8, wanted: u8) -> Option<()> {
    (tag == wanted).then_some(())
}

/// One DER element: (tag, contents, what follows). Single-byte tags only,
/// which is all a certificate's structure up to the subject uses.
fn tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let octets = (first & 0x7f) as usize;
        if octets == 0 || octets > 4 || rest.len() < octets {
            return None;
        }
        let len = rest[..octets]
            .iter()
            .fold(0usize, |n, &b| (n << 8) | b as usize);
        rest = &rest[octets..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The string types a name attribute may have, as Go decodes them.
fn decode_string(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, IA5String, NumericString
        0x0c | 0x13 | 0x16 | 0x12 => String::from_utf8(value.to_vec()).ok(),
        // T61String: taken as Latin-1, as Go does.
        0x14 => Some(value.iter().map(|&b| b as char).collect()),
        // BMPString: UTF-16, big-endian.
        0x1e => {
            if !value.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = value
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        // UniversalString: UTF-32, big-endian.
        0x1c => {
            if !value.len().is_multiple_of(4) {
                return None;
            }
            value
                .chunks(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(dn: rcgen::DistinguishedName) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["client".to_string()]).unwrap();
        params.distinguished_name = dn;
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_subject_common_name_is_read() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::OrganizationName, "Acme");
        dn.push(rcgen::DnType::CommonName, "worker-7.example");
        assert_eq!(common_name(&cert(dn)).as_deref(), Some("worker-7.example"));
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(
            rcgen::DnType::CommonName,
            rcgen::DnValue::BmpString("ünï".try_into().unwrap()),
        );
        assert_eq!(common_name(&cert(dn)).as_deref(), Some("ünï"));
    }

    #[test]
    fn the_subject_not_the_issuer() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name = rcgen::DistinguishedName::new();
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "the CA");
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf = rcgen::CertificateParams::new(vec!["client".to_string()]).unwrap();
        leaf.distinguished_name = rcgen::DistinguishedName::new();
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "the client");
        let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
        assert_eq!(common_name(leaf.der()).as_deref(), Some("the client"));
    }

    #[test]
    fn no_common_name_or_garbage_gives_none() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::OrganizationName, "Acme");
        assert_eq!(common_name(&cert(dn)), None);
        assert_eq!(common_name(b""), None);
        assert_eq!(common_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "cut");
        let der = cert(dn);
        for len in 0..der.len() {
            // Truncated anywhere: never a panic.
            let _ = common_name(&der[..len]);
        }
    }
}
