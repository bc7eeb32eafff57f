//! A test CA and server certificates, made once per test binary with the
//! `openssl` command line and copied into each test's directory:
//!
//!   ca.pem                the CA (trust it with `tls_ca_file`)
//!   good.pem/.key         localhost and 127.0.0.1, valid now
//!   expired.pem/.key      localhost and 127.0.0.1, valid in 2020 only
//!   future.pem/.key       localhost and 127.0.0.1, valid from 2090
//!   other.pem/.key        other.example only (wrong name)
//!   self.pem/.key         self-signed, other.example, expired: only a pin
//!                         accepts it; `self.fp` is its SHA-256
//!
//! Without openssl, `install` returns None and the caller prints SKIP.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The test CA's openssl configuration (shared with src/tls/tests.rs).
const OPENSSL_CNF: &str = include_str!("openssl-test.cnf");

const EC: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("openssl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn leaf(dir: &Path, name: &str, ca: &str, ext: &str, dates: (&str, &str)) -> Result<(), String> {
    let (keyf, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    let subj = format!("/CN={name}");
    let mut req = vec!["req", "-new", "-config", "openssl.cnf", "-nodes"];
    req.extend_from_slice(EC);
    req.extend_from_slice(&["-keyout", &keyf, "-out", &csr, "-subj", &subj]);
    openssl(dir, &req)?;
    let (ca_cert, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    let mut sign = vec!["ca", "-batch", "-config", "openssl.cnf", "-notext"];
    if ca.is_empty() {
        sign.extend_from_slice(&["-selfsign", "-keyfile", &keyf]);
    } else {
        sign.extend_from_slice(&["-cert", &ca_cert, "-keyfile", &ca_key]);
    }
    sign.extend_from_slice(&["-extensions", ext, "-in", &csr, "-out", &pem]);
    if dates.0.is_empty() {
        sign.extend_from_slice(&["-days", "3650"]);
    } else {
        sign.extend_from_slice(&["-startdate", dates.0, "-enddate", dates.1]);
    }
    openssl(dir, &sign)
}

fn make() -> Result<BTreeMap<String, Vec<u8>>, String> {
    match Command::new("openssl").arg("version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Err("no working openssl command (install the openssl package)".into()),
    }
    let dir = std::env::temp_dir().join(format!("masqmail-test-pki-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("newcerts")).map_err(|e| e.to_string())?;
    let result = (|| {
        fs::write(dir.join("openssl.cnf"), OPENSSL_CNF).map_err(|e| e.to_string())?;
        fs::write(dir.join("index.txt"), b"").map_err(|e| e.to_string())?;
        fs::write(dir.join("serial"), b"1000\n").map_err(|e| e.to_string())?;
        let mut req = vec!["req", "-x509", "-new", "-config", "openssl.cnf", "-nodes"];
        req.extend_from_slice(EC);
        req.extend_from_slice(&["-extensions", "v3_ca", "-days", "3650"]);
        req.extend_from_slice(&["-keyout", "ca.key", "-out", "ca.pem"]);
        req.extend_from_slice(&["-subj", "/CN=masqmail test CA"]);
        openssl(&dir, &req)?;
        leaf(&dir, "good", "ca", "localhost", ("", ""))?;
        leaf(
            &dir,
            "expired",
            "ca",
            "localhost",
            ("20200101000000Z", "20210101000000Z"),
        )?;
        leaf(
            &dir,
            "future",
            "ca",
            "localhost",
            ("20900101000000Z", "20910101000000Z"),
        )?;
        leaf(&dir, "other", "ca", "other", ("", ""))?;
        leaf(
            &dir,
            "self",
            "",
            "other",
            ("20200101000000Z", "20210101000000Z"),
        )?;
        let out = Command::new("openssl")
            .args([
                "x509",
                "-noout",
                "-fingerprint",
                "-sha256",
                "-in",
                "self.pem",
            ])
            .current_dir(&dir)
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        let fp = text.split('=').nth(1).unwrap_or("").trim().to_string();
        if fp.len() != 95 {
            return Err(format!("odd fingerprint output: {text}"));
        }
        fs::write(dir.join("self.fp"), fp).map_err(|e| e.to_string())?;
        let mut files = BTreeMap::new();
        for e in fs::read_dir(&dir).map_err(|e| e.to_string())?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".pem") || name.ends_with(".key") || name.ends_with(".fp") {
                files.insert(name, fs::read(e.path()).map_err(|e| e.to_string())?);
            }
        }
        Ok(files)
    })();
    let _ = fs::remove_dir_all(&dir);
    result
}

/// Copy the test PKI into `dir/pki/` and return that directory, or None
/// (after printing SKIP with the reason) when openssl is missing.
pub fn install(dir: &Path, test: &str) -> Option<PathBuf> {
    static PKI: OnceLock<Result<BTreeMap<String, Vec<u8>>, String>> = OnceLock::new();
    match PKI.get_or_init(make) {
        Ok(files) => {
            let p = dir.join("pki");
            fs::create_dir_all(&p).expect("mkdir pki");
            for (name, data) in files {
                fs::write(p.join(name), data).expect("write pki file");
            }
            Some(p)
        }
        Err(why) => {
            eprintln!("SKIP: {test}: {why}");
            None
        }
    }
}

/// A rustls server config from `NAME.pem` and `NAME.key` in `pki`.
#[cfg(feature = "tls")]
pub fn server_config(pki: &Path, name: &str) -> std::sync::Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(pki.join(format!("{name}.pem")))
            .expect("cert file")
            .collect::<Result<_, _>>()
            .expect("certs");
    let key = PrivateKeyDer::from_pem_file(pki.join(format!("{name}.key"))).expect("key");
    let cfg = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    std::sync::Arc::new(cfg)
}
