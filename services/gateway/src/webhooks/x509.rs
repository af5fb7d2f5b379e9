//! The little of an X.509 certificate that checking an SNS signature needs:
//! its RSA public key and its validity period, read by walking the DER
//! (RFC 5280 §4.1). The certificate's own chain is not checked: it is
//! trusted because it came over HTTPS from an Amazon SNS host.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, NaiveDateTime, Utc};

/// `rsaEncryption`, 1.2.840.113549.1.1.1, as DER content octets.
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OBJECT_IDENTIFIER: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0] EXPLICIT Version` of the TBS certificate.
const VERSION: u8 = 0xa0;

/// A signing certificate's RSA key and when it may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The PKCS#1 `RSAPublicKey` (DER), as `ring` verifies with it.
    pub rsa_public_key: Vec<u8>,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

impl Certificate {
    /// Whether `now` falls within the validity period.
    pub fn valid_at(&self, now: DateTime<Utc>) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// Reads the first certificate of a PEM document.
pub fn from_pem(pem: &str) -> Result<Certificate, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find(BEGIN).ok_or("no PEM certificate")? + BEGIN.len();
    let length = pem[start..]
        .find(END)
        .ok_or("an unterminated PEM certificate")?;
    let base64: String = pem[start..start + length]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = STANDARD
        .decode(base64)
        .map_err(|_| "a PEM certificate that is not base64")?;
    from_der(&der)
}

/// Reads a DER certificate.
pub fn from_der(der: &[u8]) -> Result<Certificate, String> {
    let certificate = Der(der).expect(SEQUENCE, "certificate")?;
    let mut tbs = Der(Der(certificate).expect(SEQUENCE, "tbsCertificate")?);
    if tbs.peek() == Some(VERSION) {
        tbs.next()?;
    }
    tbs.expect(INTEGER, "serialNumber")?;
    tbs.expect(SEQUENCE, "signature")?;
    tbs.expect(SEQUENCE, "issuer")?;
    let mut validity = Der(tbs.expect(SEQUENCE, "validity")?);
    let not_before = time(&mut validity)?;
    let not_after = time(&mut validity)?;
    tbs.expect(SEQUENCE, "subject")?;
    let mut key_info = Der(tbs.expect(SEQUENCE, "subjectPublicKeyInfo")?);

    let mut algorithm = Der(key_info.expect(SEQUENCE, "algorithm")?);
    if algorithm.expect(OBJECT_IDENTIFIER, "algorithm")? != RSA_ENCRYPTION {
        return Err("the certificate's key is not an RSA key".into());
    }
    let bits = key_info.expect(BIT_STRING, "subjectPublicKey")?;
    let Some((0, key)) = bits.split_first() else {
        return Err("a malformed subjectPublicKey".into());
    };
    Ok(Certificate {
        rsa_public_key: key.to_vec(),
        not_before,
        not_after,
    })
}

/// A `Time` (RFC 5280 §4.1.2.5): UTCTime before 2050, GeneralizedTime after.
fn time(der: &mut Der<'_>) -> Result<DateTime<Utc>, String> {
    let (tag, value) = der.next()?;
    let text = std::str::from_utf8(value).map_err(|_| "a validity time that is not text")?;
    let full = match tag {
        UTC_TIME if text.len() == 13 => {
            let century = if text[..2] < *"50" { "20" } else { "19" };
            format!("{century}{text}")
        }
        GENERALIZED_TIME if text.len() == 15 => text.to_owned(),
        _ => return Err("a malformed validity time".into()),
    };
    NaiveDateTime::parse_from_str(&full, "%Y%m%d%H%M%SZ")
        .map(|time| time.and_utc())
        .map_err(|_| format!("a malformed validity time {text:?}"))
}

/// DER elements one after the other; only the forms certificates use.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// The next element's tag and content.
    fn next(&mut self) -> Result<(u8, &'a [u8]), String> {
        let truncated = || "a truncated certificate".to_owned();
        let (&tag, rest) = self.0.split_first().ok_or_else(truncated)?;
        if tag & 0x1f == 0x1f {
            return Err("a certificate with a multi-byte tag".into());
        }
        let (&first, rest) = rest.split_first().ok_or_else(truncated)?;
        let (length, rest) = match first {
            short @ 0..=0x7f => (usize::from(short), rest),
            long @ 0x81..=0x84 => {
                let octets = usize::from(long & 0x7f);
                if rest.len() < octets {
                    return Err(truncated());
                }
                let (length, rest) = rest.split_at(octets);
                let length = length
                    .iter()
                    .fold(0usize, |sum, octet| sum << 8 | usize::from(*octet));
                (length, rest)
            }
            _ => return Err("a certificate with an unsupported length form".into()),
        };
        if rest.len() < length {
            return Err(truncated());
        }
        let (content, rest) = rest.split_at(length);
        self.0 = rest;
        Ok((tag, content))
    }

    /// The next element's content, which must carry `tag`.
    fn expect(&mut self, tag: u8, what: &str) -> Result<&'a [u8], String> {
        match self.next()? {
            (found, content) if found == tag => Ok(content),
            _ => Err(format!("a certificate whose {what} is malformed")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DER of `tag` around `content` (short or two-octet length).
    fn element(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n @ 0..=0x7f => out.push(n as u8),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(content);
        out
    }

    fn certificate(algorithm: &[u8], not_after: (u8, &str)) -> Vec<u8> {
        let key = [&[0u8][..], &element(SEQUENCE, &[INTEGER, 1, 5])].concat();
        let key_info = [
            element(SEQUENCE, &element(OBJECT_IDENTIFIER, algorithm)),
            element(BIT_STRING, &key),
        ]
        .concat();
        let validity = [
            element(UTC_TIME, b"250101000000Z"),
            element(not_after.0, not_after.1.as_bytes()),
        ]
        .concat();
        let tbs = [
            element(VERSION, &element(INTEGER, &[2])),
            element(INTEGER, &[7]),
            element(SEQUENCE, &[]),
            element(SEQUENCE, &[]),
            element(SEQUENCE, &validity),
            element(SEQUENCE, &[]),
            element(SEQUENCE, &key_info),
        ]
        .concat();
        element(SEQUENCE, &[element(SEQUENCE, &tbs), vec![0; 200]].concat())
    }

    #[test]
    fn the_rsa_key_and_validity_are_read_from_a_certificate() {
        let der = certificate(RSA_ENCRYPTION, (GENERALIZED_TIME, "20510630120000Z"));

        let read = from_der(&der).unwrap();

        assert_eq!(read.rsa_public_key, element(SEQUENCE, &[INTEGER, 1, 5]));
        assert_eq!(read.not_before.to_rfc3339(), "2025-01-01T00:00:00+00:00");
        assert_eq!(read.not_after.to_rfc3339(), "2051-06-30T12:00:00+00:00");
        assert!(read.valid_at("2030-01-01T00:00:00Z".parse().unwrap()));
        assert!(!read.valid_at("2024-12-31T23:59:59Z".parse().unwrap()));
        assert!(!read.valid_at("2051-06-30T12:00:01Z".parse().unwrap()));
    }

    #[test]
    fn a_two_digit_year_before_50_is_in_this_century() {
        let der = certificate(RSA_ENCRYPTION, (UTC_TIME, "491231235959Z"));
        assert_eq!(
            from_der(&der).unwrap().not_after.format("%Y").to_string(),
            "2049"
        );
        let der = certificate(RSA_ENCRYPTION, (UTC_TIME, "500101000000Z"));
        assert_eq!(
            from_der(&der).unwrap().not_after.format("%Y").to_string(),
            "1950"
        );
    }

    #[test]
    fn a_certificate_with_another_key_type_or_cut_short_is_refused() {
        let ec_public_key = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
        let der = certificate(&ec_public_key, (UTC_TIME, "300101000000Z"));
        assert!(from_der(&der).unwrap_err().contains("not an RSA key"));

        let der = certificate(RSA_ENCRYPTION, (UTC_TIME, "300101000000Z"));
        for cut in [1, 2, 10, der.len() - 1] {
            assert!(from_der(&der[..cut]).is_err(), "cut at {cut}");
        }
        assert!(from_der(&[0x30, 0x80, 0, 0]).is_err(), "indefinite length");
        assert!(
            from_der(&[0x30, 0x85, 0, 0, 0, 0, 1]).is_err(),
            "oversized length"
        );
    }

    #[test]
    fn pem_without_a_certificate_is_refused() {
        assert!(from_pem("").is_err());
        assert!(from_pem("-----BEGIN CERTIFICATE-----\nMIIB").is_err());
        let garbage = "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
        assert!(from_pem(garbage).unwrap_err().contains("base64"));
        let der = certificate(RSA_ENCRYPTION, (UTC_TIME, "300101000000Z"));
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            STANDARD.encode(&der)
        );
        assert_eq!(from_pem(&pem), from_der(&der));
    }
}
