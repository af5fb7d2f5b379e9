//! The gateway's REST API over HTTP: JSON in, JSON out, and errors that say
//! what to do next.

use std::time::Duration;

use reqwest::{Client, RequestBuilder, StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// For everything but uploads, which take as long as the file needs.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A failed exchange with the gateway.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot reach the gateway at {url}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("no API key")]
    MissingKey,
    #[error("{message}")]
    Refused {
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error("unexpected answer from the gateway ({status}): {detail}")]
    Unexpected { status: StatusCode, detail: String },
    #[error("the request to the gateway failed")]
    Transport(#[source] reqwest::Error),
}

impl GatewayError {
    /// What the user can do about it, when there is something to say.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Self::Unreachable { .. } => Some(
                "is the gateway running? `make run` starts it; \
                 --gateway or MUSTER_GATEWAY_URL sets its address",
            ),
            Self::MissingKey => Some(
                "set MUSTER_API_KEY or pass --api-key; \
                 `muster-gateway create-tenant --name NAME` prints a key",
            ),
            Self::Refused {
                status: StatusCode::UNAUTHORIZED,
                ..
            } => Some("check MUSTER_API_KEY: the key may be mistyped or revoked"),
            Self::Refused {
                status: StatusCode::SERVICE_UNAVAILABLE,
                ..
            } => Some("the services behind the gateway are not answering; `make run` starts them"),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// A client of one gateway, with one API key.
pub struct Gateway {
    http: Client,
    base: Url,
    api_key: Option<String>,
}

impl Gateway {
    /// A client of the gateway at `base`.
    pub fn new(base: &str, api_key: Option<String>) -> anyhow::Result<Self> {
        let base = Url::parse(base)
            .map_err(|error| anyhow::anyhow!("--gateway {base:?} is not a URL: {error}"))?;
        anyhow::ensure!(
            base.scheme() == "http",
            "--gateway {base}: this build of muster speaks plain http only"
        );
        let http = Client::builder().connect_timeout(CONNECT_TIMEOUT).build()?;
        let api_key = api_key.filter(|key| !key.trim().is_empty());
        Ok(Self {
            http,
            base,
            api_key,
        })
    }

    /// `GET` of the resource at `path` (segments, each escaped).
    pub async fn get(
        &self,
        path: &[&str],
        query: &[(&str, String)],
    ) -> Result<Value, GatewayError> {
        let request = self
            .http
            .get(self.url(path))
            .query(query)
            .timeout(REQUEST_TIMEOUT);
        self.send(request).await
    }

    /// Checks that the key is accepted and the service behind `path` answers,
    /// with a `GET` whose 4xx about the resource itself is fine.
    pub async fn preflight(&self, path: &[&str]) -> Result<(), GatewayError> {
        match self.get(path, &[]).await {
            Ok(_) => Ok(()),
            Err(GatewayError::Refused { status, .. })
                if status.is_client_error()
                    && status != StatusCode::UNAUTHORIZED
                    && status != StatusCode::FORBIDDEN =>
            {
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// `POST` of `body` as JSON.
    pub async fn post(&self, path: &[&str], body: &Value) -> Result<Value, GatewayError> {
        let request = self
            .http
            .post(self.url(path))
            .json(body)
            .timeout(REQUEST_TIMEOUT);
        self.send(request).await
    }

    /// `DELETE` of the resource at `path`; `null` for an empty answer.
    pub async fn delete(&self, path: &[&str]) -> Result<Value, GatewayError> {
        let request = self.http.delete(self.url(path)).timeout(REQUEST_TIMEOUT);
        self.send(request).await
    }

    /// `POST` of a streamed body of `length` bytes.
    pub async fn upload(
        &self,
        path: &[&str],
        query: &[(String, String)],
        body: reqwest::Body,
        length: u64,
    ) -> Result<Value, GatewayError> {
        let request = self
            .http
            .post(self.url(path))
            .query(query)
            .header(reqwest::header::CONTENT_LENGTH, length)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        self.send(request).await
    }

    fn url(&self, path: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("http URLs have a path")
            .pop_if_empty()
            .extend(path);
        url
    }

    async fn send(&self, request: RequestBuilder) -> Result<Value, GatewayError> {
        let key = self.api_key.as_deref().ok_or(GatewayError::MissingKey)?;
        let response = request.bearer_auth(key).send().await.map_err(|source| {
            if source.is_connect() {
                GatewayError::Unreachable {
                    url: self.base.to_string(),
                    source,
                }
            } else {
                GatewayError::Transport(source)
            }
        })?;

        let status = response.status();
        let text = response.text().await.map_err(GatewayError::Transport)?;
        if status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|_| GatewayError::Unexpected {
                status,
                detail: excerpt(&text),
            });
        }
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(ErrorBody { error }) => Err(GatewayError::Refused {
                status,
                code: error.code,
                message: error.message,
            }),
            Err(_) => Err(GatewayError::Unexpected {
                status,
                detail: excerpt(&text),
            }),
        }
    }
}

/// The start of a body that is not the JSON expected, for the error message.
fn excerpt(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None if text.is_empty() => "(empty body)".into(),
        None => text.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        let gateway = Gateway::new("http://127.0.0.1:8080/", Some("k".into())).unwrap();
        let url = gateway.url(&["v1", "campaigns", "../x?y", "launch"]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/v1/campaigns/..%2Fx%3Fy/launch"
        );
    }

    #[test]
    fn a_gateway_under_a_path_prefix_keeps_it() {
        let gateway = Gateway::new("http://example.test/muster", None).unwrap();
        assert_eq!(gateway.url(&["v1", "people"]).path(), "/muster/v1/people");
    }

    #[test]
    fn an_https_gateway_is_refused_with_a_reason() {
        let error = Gateway::new("https://example.test", None).err().unwrap();
        assert!(error.to_string().contains("plain http"), "{error}");
    }

    #[test]
    fn a_missing_or_refused_key_comes_with_a_hint() {
        assert!(
            GatewayError::MissingKey
                .hint()
                .unwrap()
                .contains("MUSTER_API_KEY")
        );
        let refused = GatewayError::Refused {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthenticated".into(),
            message: "unknown or revoked API key".into(),
        };
        assert!(refused.hint().unwrap().contains("MUSTER_API_KEY"));
    }
}
