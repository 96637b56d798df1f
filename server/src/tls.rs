//! HTTPS for the listener, from PEM files named in the configuration.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, ServerConfig};

use crate::config::TlsConfig;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("could not read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no certificate or no private key.
    #[error("{path} holds no {what}")]
    Missing {
        /// The file.
        path: PathBuf,
        /// `certificate` or `private key`.
        what: &'static str,
    },
    /// rustls refused the certificate and key.
    #[error("certificate and key do not make a valid TLS configuration")]
    Config(#[from] rustls::Error),
}

/// A TLS acceptor for the certificate chain and key in `config`.
pub fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let certificates = read_pem(&config.certificate, |reader| {
        rustls_pemfile::certs(reader).collect::<Result<Vec<_>, _>>()
    })?;
    if certificates.is_empty() {
        return Err(missing(&config.certificate, "certificate"));
    }
    let key = read_pem(&config.key, |reader| rustls_pemfile::private_key(reader))?
        .ok_or_else(|| missing(&config.key, "private key"))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certificates, key)?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

fn read_pem<T>(
    path: &Path,
    parse: impl FnOnce(&mut &[u8]) -> Result<T, std::io::Error>,
) -> Result<T, TlsError> {
    let read_error = |source| TlsError::Read {
        path: path.to_owned(),
        source,
    };
    let bytes = std::fs::read(path).map_err(read_error)?;
    parse(&mut bytes.as_slice()).map_err(read_error)
}

fn missing(path: &Path, what: &'static str) -> TlsError {
    TlsError::Missing {
        path: path.to_owned(),
        what,
    }
}
