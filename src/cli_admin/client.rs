//! HTTP/1 client for the admin API, over plain TCP.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::net::TcpStream;

use super::AdminArgs;
use crate::admin::read_token_file;

/// Time one command may take, from connecting to reading the whole response.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response body the client reads.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Invalid arguments, an unreadable token file or a malformed URL.
    #[error("{0}")]
    Usage(String),
    /// The admin API could not be reached or timed out.
    #[error("{0}")]
    Unreachable(String),
    /// The admin API returned an error status.
    #[error("{message} (HTTP {status})")]
    Rejected { status: u16, message: String },
    /// The admin API sent a response this client cannot read.
    #[error("invalid response from the admin API: {0}")]
    Response(String),
}

impl CliError {
    /// Process exit code: 2 for usage errors, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }
}

pub(super) struct AdminClient {
    host: String,
    port: u16,
    /// `host:port` as written in the URL, for the Host header.
    authority: String,
    /// Path of the base URL without its trailing slash.
    prefix: String,
    display_url: String,
    token: Option<String>,
    operator: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

impl AdminClient {
    pub fn from_args(args: &AdminArgs) -> Result<AdminClient, CliError> {
        let malformed =
            |detail: &str| CliError::Usage(format!("invalid admin URL {:?}: {detail}", args.url));
        let uri: Uri = args
            .url
            .parse()
            .map_err(|_| malformed("expected a form such as http://127.0.0.1:6433"))?;
        if uri.scheme_str() != Some("http") {
            return Err(malformed("only http:// URLs are supported"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| malformed("the host is missing"))?;
        if uri.query().is_some() {
            return Err(malformed("a query string is not allowed"));
        }

        let token = match &args.token_file {
            Some(path) => {
                Some(read_token_file(path).map_err(|error| CliError::Usage(error.to_string()))?)
            }
            None => None,
        };
        let operator = args.operator.clone().or_else(|| std::env::var("USER").ok());

        Ok(AdminClient {
            host: authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_owned(),
            prefix: uri.path().trim_end_matches('/').to_owned(),
            display_url: args.url.clone(),
            token,
            operator,
        })
    }

    /// Sends one request and decodes the JSON response.
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, CliError> {
        let request = self.build(method, path, body)?;
        let exchange = tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(request));
        let (status, bytes) = exchange.await.map_err(|_| {
            CliError::Unreachable(format!(
                "admin API at {} timed out after {} s",
                self.display_url,
                REQUEST_TIMEOUT.as_secs()
            ))
        })??;

        if !status.is_success() {
            return Err(self.rejection(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|error| CliError::Response(error.to_string()))
    }

    fn build(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Request<Full<Bytes>>, CliError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(HOST, &self.authority)
            .header(ACCEPT, "application/json");
        if let Some(token) = &self.token {
            builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(operator) = &self.operator {
            builder = builder.header("x-schemagate-operator", operator);
        }

        let bytes = match body {
            Some(body) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        builder
            .body(Full::new(bytes))
            .map_err(|error| CliError::Usage(format!("invalid request: {error}")))
    }

    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), CliError> {
        let unreachable = |error: &dyn std::fmt::Display| {
            CliError::Unreachable(format!(
                "failed to reach the admin API at {}: {error}",
                self.display_url
            ))
        };

        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|error| unreachable(&error))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| unreachable(&error))?;
        let driver = tokio::spawn(connection);

        let response = sender
            .send_request(request)
            .await
            .map_err(|error| unreachable(&error))?;
        let status = response.status();
        let limited = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES);
        let bytes = limited
            .collect()
            .await
            .map_err(|error| CliError::Response(error.to_string()))?
            .to_bytes();

        driver.abort();
        Ok((status, bytes))
    }

    fn rejection(&self, status: StatusCode, bytes: &[u8]) -> CliError {
        let mut message = match serde_json::from_slice::<ErrorBody>(bytes) {
            Ok(body) => body.error,
            Err(_) => String::from_utf8_lossy(bytes).trim().to_owned(),
        };
        if status == StatusCode::UNAUTHORIZED && self.token.is_none() {
            message.push_str("; pass --token-file or set SCHEMAGATE_ADMIN_TOKEN_FILE");
        }
        CliError::Rejected {
            status: status.as_u16(),
            message,
        }
    }
}
