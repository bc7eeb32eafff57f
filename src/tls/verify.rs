//! The server certificate check for `tls_fingerprint` (a pin) and for
//! `tls_verify '0'` (no pin): chain, name and dates are not looked at; the
//! handshake signature is, with the provider's algorithms, against the key
//! of the certificate the server sent (which, with a pin, is the pinned one).

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, OtherError, SignatureScheme};

use crate::config::format_fingerprint;

#[derive(Debug)]
pub(super) struct PinVerifier {
    /// None: accept any certificate.
    pin: Option<[u8; 32]>,
    algs: WebPkiSupportedAlgorithms,
}

impl PinVerifier {
    pub(super) fn new(pin: Option<[u8; 32]>, algs: WebPkiSupportedAlgorithms) -> PinVerifier {
        PinVerifier { pin, algs }
    }
}

/// The certificate the server sent is not the pinned one. Carried inside
/// `CertificateError::Other` so [`super::classify`] can name both.
#[derive(Debug)]
pub(super) struct PinMismatch {
    pub(super) pinned: [u8; 32],
    pub(super) got: [u8; 32],
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "server certificate has SHA-256 {}, but tls_fingerprint pins {} \
             (if the server renewed its certificate, pin the new one)",
            format_fingerprint(&self.got),
            format_fingerprint(&self.pinned)
        )
    }
}

impl std::error::Error for PinMismatch {}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(pinned) = self.pin else {
            return Ok(ServerCertVerified::assertion());
        };
        let got = super::sha256(end_entity.as_ref());
        if got == pinned {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch { pinned, got })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
