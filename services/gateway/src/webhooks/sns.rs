//! Checking that a message posted to `/webhooks/ses` was signed by Amazon
//! SNS: the signature (version 1: SHA1withRSA, version 2: SHA256withRSA) of
//! the message's canonical string, under the certificate at its
//! `SigningCertURL`, fetched only from an `sns.<region>.amazonaws.com` host
//! over HTTPS and cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use muster_runtime::ApiError;
use reqwest::Url;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use serde_json::{Map, Value};

use super::x509::{self, Certificate};

/// Certificates are a few KiB; a larger answer is not one.
const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;
/// Certificates kept; SNS uses one at a time per region.
const CACHE_SIZE: usize = 64;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The signed fields of each message type, in canonical order
/// (`Subject` is signed only when present).
const NOTIFICATION: &[&str] = &[
    "Message",
    "MessageId",
    "Subject",
    "Timestamp",
    "TopicArn",
    "Type",
];
const CONFIRMATION: &[&str] = &[
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
];

/// Verifies SNS signatures, fetching and caching signing certificates.
#[derive(Clone)]
pub struct Verifier {
    http: reqwest::Client,
    /// Extra `SigningCertURL` prefixes allowed (tests' local servers).
    allowed_prefixes: Arc<Vec<String>>,
    cache: Arc<Mutex<HashMap<String, Arc<Certificate>>>>,
}

impl Verifier {
    /// A verifier that also trusts certificates under `allowed_prefixes`.
    pub fn new(allowed_prefixes: Vec<String>) -> anyhow::Result<Self> {
        // No redirects: a certificate host may not send the fetch elsewhere.
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            allowed_prefixes: Arc::new(allowed_prefixes),
            cache: Arc::default(),
        })
    }

    /// Checks the signature of `message`, an SNS message's JSON object.
    pub async fn verify(&self, message: &Map<String, Value>) -> Result<(), ApiError> {
        let text = canonical(message).map_err(|why| rejected(&why))?;
        let version = field(message, "SignatureVersion").unwrap_or_default();
        let algorithm: &'static dyn VerificationAlgorithm = match version {
            "1" => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            "2" => &signature::RSA_PKCS1_2048_8192_SHA256,
            _ => return Err(rejected("its SignatureVersion is neither 1 nor 2")),
        };
        let signature = field(message, "Signature")
            .and_then(|s| STANDARD.decode(s).ok())
            .ok_or_else(|| rejected("it has no base64 Signature"))?;
        let url =
            field(message, "SigningCertURL").ok_or_else(|| rejected("it has no SigningCertURL"))?;
        let url = cert_url(url, &self.allowed_prefixes).map_err(|why| rejected(&why))?;

        let certificate = self.certificate(&url).await?;
        if !certificate.valid_at(chrono::Utc::now()) {
            return Err(rejected(
                "its signing certificate is expired or not yet valid",
            ));
        }
        UnparsedPublicKey::new(algorithm, &certificate.rsa_public_key)
            .verify(text.as_bytes(), &signature)
            .map_err(|_| rejected("the signature does not match the message"))
    }

    /// The certificate at `url`, from the cache or fetched.
    async fn certificate(&self, url: &Url) -> Result<Arc<Certificate>, ApiError> {
        if let Some(cached) = self.cached().get(url.as_str()) {
            return Ok(cached.clone());
        }
        let pem = self.fetch(url).await?;
        let certificate = x509::from_pem(&pem)
            .map(Arc::new)
            .map_err(|why| rejected(&format!("its signing certificate is unusable: {why}")))?;
        let mut cache = self.cached();
        if cache.len() >= CACHE_SIZE {
            cache.clear();
        }
        cache.insert(url.as_str().to_owned(), certificate.clone());
        tracing::info!(url = %url, "sns signing certificate fetched");
        Ok(certificate)
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Certificate>>> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn fetch(&self, url: &Url) -> Result<String, ApiError> {
        let unavailable = |error: &dyn std::fmt::Display| {
            tracing::warn!(url = %url, %error, "sns signing certificate not fetched");
            ApiError::Unavailable("the SNS signing certificate could not be fetched".into())
        };
        let mut response = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(unavailable(&status));
        }
        if !status.is_success() {
            let why = format!("its signing certificate is not there (HTTP {status})");
            return Err(rejected(&why));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| unavailable(&e))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_CERTIFICATE_BYTES {
                return Err(rejected("its signing certificate is too large to be one"));
            }
        }
        String::from_utf8(body).map_err(|_| rejected("its signing certificate is not PEM text"))
    }
}

/// A refusal of the message, saying why.
fn rejected(why: &str) -> ApiError {
    ApiError::Unauthenticated(format!("not a message signed by Amazon SNS: {why}"))
}

fn field<'a>(message: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    message.get(name).and_then(Value::as_str)
}

/// The string SNS signs: each signed field's name and value, one per line.
pub fn canonical(message: &Map<String, Value>) -> Result<String, String> {
    let kind = field(message, "Type").unwrap_or_default();
    let names = match kind {
        "Notification" => NOTIFICATION,
        "SubscriptionConfirmation" | "UnsubscribeConfirmation" => CONFIRMATION,
        _ => return Err(format!("its Type {kind:?} is not one SNS signs")),
    };
    let mut text = String::new();
    for name in names {
        match field(message, name) {
            Some(value) => text.push_str(&format!("{name}\n{value}\n")),
            None if *name == "Subject" => {}
            None => return Err(format!("it lacks {name}, which a {kind} signs")),
        }
    }
    Ok(text)
}

/// `raw` as a URL certificates may be fetched from: HTTPS on the default
/// port of `sns.<region>.amazonaws.com`, or under an allowed prefix.
pub fn cert_url(raw: &str, allowed_prefixes: &[String]) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|_| "its SigningCertURL is not a URL".to_owned())?;
    if allowed_prefixes
        .iter()
        .any(|prefix| !prefix.is_empty() && raw.starts_with(prefix.as_str()))
    {
        return Ok(url);
    }
    let host = url.host_str().unwrap_or_default();
    let trusted = url.scheme() == "https"
        && url.username().is_empty()
        && url.password().is_none()
        && url.port().is_none()
        && is_sns_host(host);
    match trusted {
        true => Ok(url),
        false => Err(format!(
            "its SigningCertURL is not on an Amazon SNS host over HTTPS ({})",
            url.host_str().unwrap_or("no host")
        )),
    }
}

/// `sns.<region>.amazonaws.com`, the region like `eu-west-3`.
fn is_sns_host(host: &str) -> bool {
    let Some(region) = host
        .strip_prefix("sns.")
        .and_then(|rest| rest.strip_suffix(".amazonaws.com"))
    else {
        return false;
    };
    !region.is_empty()
        && region.split('-').count() >= 3
        && region
            .split('-')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()))
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn a_notification_signs_its_subject_only_when_it_has_one() {
        let mut message = object(json!({
            "Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:t",
            "Message": "{\"a\":1}\nline", "Timestamp": "2025-01-14T09:02:12.345Z",
            "SignatureVersion": "1", "Signature": "x", "UnsubscribeURL": "https://u"
        }));

        let without = canonical(&message).unwrap();
        message.insert("Subject".into(), json!("Bounce"));
        let with = canonical(&message).unwrap();

        assert_eq!(
            without,
            "Message\n{\"a\":1}\nline\nMessageId\nm-1\nTimestamp\n2025-01-14T09:02:12.345Z\n\
             TopicArn\narn:t\nType\nNotification\n"
        );
        assert_eq!(
            with,
            "Message\n{\"a\":1}\nline\nMessageId\nm-1\nSubject\nBounce\n\
             Timestamp\n2025-01-14T09:02:12.345Z\nTopicArn\narn:t\nType\nNotification\n"
        );
    }

    #[test]
    fn a_confirmation_signs_its_subscribe_url_and_token() {
        let message = object(json!({
            "Type": "SubscriptionConfirmation", "MessageId": "m-2", "Token": "t0k",
            "TopicArn": "arn:t", "Message": "confirm", "SubscribeURL": "https://s",
            "Timestamp": "2025-01-14T09:00:00.000Z"
        }));

        assert_eq!(
            canonical(&message).unwrap(),
            "Message\nconfirm\nMessageId\nm-2\nSubscribeURL\nhttps://s\n\
             Timestamp\n2025-01-14T09:00:00.000Z\nToken\nt0k\nTopicArn\narn:t\n\
             Type\nSubscriptionConfirmation\n"
        );
        let mut unsigned = message.clone();
        unsigned.remove("Token");
        assert!(canonical(&unsigned).is_err());
        unsigned.insert("Type".into(), json!("Notice"));
        assert!(canonical(&unsigned).is_err());
    }

    #[test]
    fn only_https_sns_hosts_serve_certificates() {
        let none: &[String] = &[];
        for good in [
            "https://sns.eu-west-3.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-gov-west-1.amazonaws.com/x.pem",
        ] {
            assert!(cert_url(good, none).is_ok(), "{good}");
        }
        for bad in [
            "http://sns.eu-west-3.amazonaws.com/x.pem",
            "https://sns.eu-west-3.amazonaws.com.evil.example/x.pem",
            "https://evil.example/sns.eu-west-3.amazonaws.com/x.pem",
            "https://evilsns.eu-west-3.amazonaws.com/x.pem",
            "https://sns.amazonaws.com/x.pem",
            "https://sns.eu_west_3.amazonaws.com/x.pem",
            "https://sns.eu-west-3.amazonaws.com:8443/x.pem",
            "https://user@sns.eu-west-3.amazonaws.com/x.pem",
            "https://s3.eu-west-3.amazonaws.com/x.pem",
            "https://sns.eu-west-3.amazonaws.com@evil.example/x.pem",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(cert_url(bad, none).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_allowed_prefix_admits_only_urls_under_it() {
        let allowed = vec!["http://127.0.0.1:4567/sns/".to_owned(), String::new()];

        assert!(cert_url("http://127.0.0.1:4567/sns/cert.pem", &allowed).is_ok());
        assert!(cert_url("http://127.0.0.1:45678/sns/cert.pem", &allowed).is_err());
        assert!(cert_url("http://127.0.0.1:4567/other/cert.pem", &allowed).is_err());
        assert!(cert_url("http://localhost:4567/sns/cert.pem", &allowed).is_err());
    }
}
