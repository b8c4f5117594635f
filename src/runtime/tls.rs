//! TLS for member and client connections (rustls with the ring provider).
//!
//! One cluster CA signs every certificate. A member presents its certificate both as a server
//! (to callers) and as a client (on its links to the other members), so member links are
//! always mutual. Whether a client must present a certificate is decided after the handshake,
//! at its `Hello` (see `runtime::access`): the TLS layer accepts an anonymous client so that
//! a client authenticating with a token can still connect, and the member refuses it there
//! when no token or certificate identifies it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::error::{Error, Result};

/// The PEM files a member or client uses: the cluster CA, and its own certificate and key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificates of the CA(s) that sign members' and clients' certificates.
    pub ca: PathBuf,
    /// This side's certificate chain (its own certificate first). Optional for a client that
    /// authenticates with a token instead.
    pub cert: Option<PathBuf>,
    /// This side's private key (PKCS#8, PKCS#1 or SEC1), with `cert`.
    pub key: Option<PathBuf>,
}

/// A member's TLS set-up: how it accepts connections and how it opens links to other members.
#[derive(Clone)]
pub struct MemberTls {
    /// For accepted connections.
    pub server: Arc<ServerConfig>,
    /// For this member's links to the others (presents the same certificate).
    pub client: Arc<ClientConfig>,
}

impl std::fmt::Debug for MemberTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemberTls")
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn config_error(what: &str, path: &Path, why: impl std::fmt::Display) -> Error {
    Error::InvalidConfig(format!("{what} {}: {why}", path.display()))
}

fn roots(ca: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(ca)
        .map_err(|e| config_error("cannot read the CA file", ca, e))?;
    for certificate in certificates {
        let certificate = certificate.map_err(|e| config_error("bad CA file", ca, e))?;
        roots
            .add(certificate)
            .map_err(|e| config_error("bad CA certificate in", ca, e))?;
    }
    if roots.is_empty() {
        return Err(config_error("no certificate in the CA file", ca, "empty"));
    }
    Ok(roots)
}

fn identity(
    files: &TlsFiles,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>> {
    let (cert, key) = match (&files.cert, &files.key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        _ => {
            return Err(Error::InvalidConfig(
                "give a certificate and its key together, or neither".into(),
            ))
        }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| config_error("cannot read the certificate file", cert, e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| config_error("bad certificate file", cert, e))?;
    if chain.is_empty() {
        return Err(config_error("no certificate in", cert, "empty"));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| config_error("cannot read a private key from", key, e))?;
    Ok(Some((chain, key)))
}

impl MemberTls {
    /// Loads a member's CA, certificate and key (all three are required).
    pub fn load(files: &TlsFiles) -> Result<MemberTls> {
        let roots = Arc::new(roots(&files.ca)?);
        let Some((chain, key)) = identity(files)? else {
            return Err(Error::InvalidConfig(
                "a member with TLS needs its certificate and key (--tls-cert, --tls-key)".into(),
            ));
        };
        // Anonymous clients pass the TLS layer and are judged at their Hello (see the
        // module's comment); a certificate that is presented must chain to the CA.
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| config_error("unusable CA file", &files.ca, e))?;
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::InvalidConfig(format!("TLS: {e}")))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| {
                let cert = files.cert.as_deref().unwrap_or(&files.ca);
                config_error("the key does not go with the certificate", cert, e)
            })?;
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::InvalidConfig(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| Error::InvalidConfig(format!("TLS certificate and key: {e}")))?;
        Ok(MemberTls {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
}

/// A client's TLS set-up from its CA and, optionally, its certificate and key.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>> {
    let roots = roots(&files.ca)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidConfig(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    let config = match identity(files)? {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| Error::InvalidConfig(format!("TLS certificate and key: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The name a certificate must carry for `host` (an IP address or a DNS name).
pub fn server_name(host: &str) -> Result<ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_string())
        .map_err(|_| Error::InvalidConfig(format!("{host:?} is not a valid host name for TLS")))
}

/// The host part of `host:port`.
pub fn host_of(endpoint: &str) -> &str {
    match endpoint.rfind(':') {
        Some(colon) => &endpoint[..colon],
        None => endpoint,
    }
}

/// The subject common name of a DER certificate, if it has one: the identity a client or
/// member certificate gives its holder. The certificate was verified by rustls already; a
/// malformed one still only yields `None`.
pub fn common_name(certificate: &[u8]) -> Option<String> {
    const COMMON_NAME_OID: &[u8] = &[0x55, 0x04, 0x03];
    let (_, certificate, _) = der(certificate)?;
    let (_, tbs, _) = der(certificate)?;
    let mut rest = tbs;
    // tbsCertificate: [0] version (optional), serial, signature, issuer, validity, subject.
    let mut fields = Vec::with_capacity(5);
    while fields.len() < 5 {
        let (tag, content, next) = der(rest)?;
        if !(fields.is_empty() && tag == 0xA0) {
            fields.push(content);
        }
        rest = next;
    }
    let mut names = fields[4];
    // Bounded: each round consumes at least the two header bytes of one element.
    while !names.is_empty() {
        let (_, set, next) = der(names)?;
        names = next;
        let mut attributes = set;
        while !attributes.is_empty() {
            let (_, attribute, next) = der(attributes)?;
            attributes = next;
            let (oid_tag, oid, value_rest) = der(attribute)?;
            let (_, value, _) = der(value_rest)?;
            if oid_tag == 0x06 && oid == COMMON_NAME_OID {
                return String::from_utf8(value.to_vec()).ok();
            }
        }
    }
    None
}

/// One DER element: (tag, content, the bytes after it).
fn der(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *bytes.first()?;
    let first = *bytes.get(1)? as usize;
    let (length, header) = if first < 0x80 {
        (first, 2)
    } else {
        let count = first & 0x7f;
        if count == 0 || count > 4 {
            return None;
        }
        let mut length = 0usize;
        for i in 0..count {
            length = (length << 8) | *bytes.get(2 + i)? as usize;
        }
        (length, 2 + count)
    };
    let end = header.checked_add(length)?;
    Some((tag, bytes.get(header..end)?, &bytes[end..]))
}

/// The file names `write_certificates` uses in its directory.
pub const CA_FILE: &str = "ca.pem";
/// The CA's private key (kept so that more certificates can be issued later).
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// Days a generated certificate stays valid.
const CERTIFICATE_DAYS: u64 = 825;

/// Creates a cluster CA in `dir` (unless one is there already) and, for each name, a
/// certificate with that common name, valid for `hosts` (IP addresses or DNS names), and its
/// key: `<name>.pem` and `<name>-key.pem`. Keys are written 0600. Members and clients get the
/// same kind of certificate (usable as server and client); the name is the identity an access
/// file grants rights to. Returns the files written.
pub fn write_certificates(dir: &Path, hosts: &[String], names: &[String]) -> Result<Vec<PathBuf>> {
    let io = |what: &str, path: &Path, e: std::io::Error| {
        Error::io(format!("{what} {}", path.display()), &e)
    };
    let tls = |e: rcgen::Error| Error::InvalidConfig(format!("generating a certificate: {e}"));
    std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
    let mut written = Vec::new();
    let ca_key_path = dir.join(CA_KEY_FILE);
    let ca_key = match std::fs::read_to_string(&ca_key_path) {
        Ok(pem) => rcgen::KeyPair::from_pem(&pem).map_err(tls)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = rcgen::KeyPair::generate().map_err(tls)?;
            let certificate = ca_params()?.self_signed(&key).map_err(tls)?;
            write_file(&dir.join(CA_FILE), certificate.pem().as_bytes(), 0o644)?;
            write_file(&ca_key_path, key.serialize_pem().as_bytes(), 0o600)?;
            written.push(dir.join(CA_FILE));
            written.push(ca_key_path.clone());
            key
        }
        Err(e) => return Err(io("reading", &ca_key_path, e)),
    };
    // Signing needs only the CA's name, key usages and key, which `ca_params` rebuilds.
    let issuer = rcgen::Issuer::new(ca_params()?, ca_key);
    for name in names {
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(Error::InvalidConfig(format!(
                "{name:?} cannot name a certificate file"
            )));
        }
        let mut params = rcgen::CertificateParams::new(hosts.to_vec()).map_err(tls)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name.as_str());
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
        ];
        set_validity(&mut params);
        let key = rcgen::KeyPair::generate().map_err(tls)?;
        let certificate = params.signed_by(&key, &issuer).map_err(tls)?;
        let cert_path = dir.join(format!("{name}.pem"));
        let key_path = dir.join(format!("{name}-key.pem"));
        write_file(&cert_path, certificate.pem().as_bytes(), 0o644)?;
        write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        written.push(cert_path);
        written.push(key_path);
    }
    Ok(written)
}

fn ca_params() -> Result<rcgen::CertificateParams> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| Error::InvalidConfig(format!("CA parameters: {e}")))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "accord cluster CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params);
    Ok(params)
}

/// Valid from yesterday (clocks differ a little) for `CERTIFICATE_DAYS`.
fn set_validity(params: &mut rcgen::CertificateParams) {
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    let date = |days: u64| {
        let (year, month, day) = civil_from_days(days);
        rcgen::date_time_ymd(year, month, day)
    };
    params.not_before = date(today.saturating_sub(1));
    params.not_after = date(today + CERTIFICATE_DAYS);
}

/// (year, month, day) of a day counted from 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (i32, u8, u8) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (year_of_era + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .map_err(|e| Error::io(format!("writing {}", path.display()), &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_name_is_read_from_a_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "accord tests");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "client-alice");
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        assert_eq!(
            common_name(certificate.der()).as_deref(),
            Some("client-alice")
        );
        let without = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let mut without = without;
        without.distinguished_name = rcgen::DistinguishedName::new();
        let certificate = without.self_signed(&key).unwrap();
        assert_eq!(common_name(certificate.der()), None);
        for cut in 0..certificate.der().len() {
            let _ = common_name(&certificate.der()[..cut]);
        }
    }

    #[test]
    fn days_become_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
    }

    #[test]
    fn generated_certificates_load_and_name_their_holders() {
        let dir = std::env::temp_dir().join(format!("accord-tls-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let hosts = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        write_certificates(&dir, &hosts, &["node1".into()]).unwrap();
        // A second call reuses the CA.
        let written = write_certificates(&dir, &hosts, &["alice".into()]).unwrap();
        assert_eq!(written.len(), 2);
        let files = |name: &str| TlsFiles {
            ca: dir.join(CA_FILE),
            cert: Some(dir.join(format!("{name}.pem"))),
            key: Some(dir.join(format!("{name}-key.pem"))),
        };
        MemberTls::load(&files("node1")).unwrap();
        client_config(&files("alice")).unwrap();
        let pem = std::fs::read(dir.join("alice.pem")).unwrap();
        let der = CertificateDer::from_pem_slice(&pem).unwrap();
        assert_eq!(common_name(&der).as_deref(), Some("alice"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("alice-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(write_certificates(&dir, &hosts, &["../x".into()]).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hosts_become_server_names() {
        assert!(matches!(
            server_name(host_of("127.0.0.1:7101")),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name(host_of("[::1]:7101")),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name(host_of("node1.example:7101")),
            Ok(ServerName::DnsName(_))
        ));
        assert!(server_name("bad name!").is_err());
    }
}
