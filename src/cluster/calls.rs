//! Calls to the API server as `gracehook audit` makes them on a real
//! cluster: each retried on 429, 5xx and lost connections with a bounded,
//! growing wait (the server's `Retry-After` honoured up to a cap), refused at
//! once on any other 4xx; and lists page by page, restarted past a 410 Gone
//! (an expired continue token) without handing on any object twice.
//!
//! The calls go through [`Client::send`] rather than `Api::list`, because
//! kube's error keeps the Status body but not the `Retry-After` header, and
//! the API server's throttling (429 from priority and fairness) says how
//! long to wait only there. The client is built without kube's own retry
//! layer ([`super::client()`]), so that retries do not multiply.

use std::time::Duration;

use http_body_util::BodyExt;
use hyper::StatusCode;
use kube::api::{ListParams, ObjectList};
use kube::client::Body;
use kube::core::Status;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use super::error::{CallError, ClusterError};

/// Objects per list call: a page of Deployments with large annotations can
/// be megabytes, and it is all in memory at once.
pub const PAGE_SIZE: u32 = 100;

/// How calls are retried and lists restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Tries per call, the first included.
    pub tries: u32,
    /// The wait before the second try; it doubles for each further one.
    pub first_wait: Duration,
    /// The longest wait, also for a server's `Retry-After`.
    pub max_wait: Duration,
    /// Restarts of one list after a 410 Gone.
    pub restarts: u32,
}

impl Default for Retry {
    /// 5 tries, waiting 0.2, 0.4, 0.8 and 1.6 s (or `Retry-After`, up to
    /// 10 s); 5 restarts.
    fn default() -> Retry {
        Retry {
            tries: 5,
            first_wait: Duration::from_millis(200),
            max_wait: Duration::from_secs(10),
            restarts: 5,
        }
    }
}

impl Retry {
    /// The wait after the `tried`-th failed try, or `None` when that was the
    /// last one.
    pub fn wait(&self, tried: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if tried >= self.tries {
            return None;
        }
        let doubled = 2u32.saturating_pow(tried.saturating_sub(1));
        let backoff = self.first_wait.saturating_mul(doubled);
        Some(
            backoff
                .max(retry_after.unwrap_or_default())
                .min(self.max_wait),
        )
    }
}

/// One failed try: what it was, whether another may help and after how long
/// the server asked to be asked again.
struct Failure {
    error: CallError,
    retryable: bool,
    retry_after: Option<Duration>,
    /// The Status body, when there was one (a 410's continue token).
    status: Option<Status>,
}

impl Failure {
    /// Not worth another try.
    fn fatal(error: CallError) -> Failure {
        Failure {
            error,
            retryable: false,
            retry_after: None,
            status: None,
        }
    }

    /// No answer (or half of one): worth another try.
    fn transport(error: kube::Error) -> Failure {
        Failure {
            error: CallError::Request(error),
            retryable: true,
            retry_after: None,
            status: None,
        }
    }

    fn code(&self) -> Option<u16> {
        match self.error {
            CallError::Status { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A GET for `T`, tried as [`Retry`] says. `make` builds the request anew
/// for each try.
async fn get<T: DeserializeOwned>(
    client: &Client,
    retry: &Retry,
    make: impl Fn() -> Result<hyper::Request<Vec<u8>>, kube::core::request::Error>,
) -> Result<T, (Failure, u32)> {
    let mut tried = 0;
    loop {
        tried += 1;
        let failure = match make() {
            Ok(request) => match try_once(client, request).await {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            },
            Err(e) => Failure::fatal(CallError::Request(kube::Error::BuildRequest(e))),
        };
        match retry
            .wait(tried, failure.retry_after)
            .filter(|_| failure.retryable)
        {
            Some(wait) => {
                tracing::warn!(error = %failure.error, ?wait, tried, "retrying");
                tokio::time::sleep(wait).await;
            }
            None => return Err((failure, tried)),
        }
    }
}

async fn try_once<T: DeserializeOwned>(
    client: &Client,
    request: hyper::Request<Vec<u8>>,
) -> Result<T, Failure> {
    let response = client
        .send(request.map(Body::from))
        .await
        .map_err(Failure::transport)?;
    let code = response.status();
    let retry_after = response
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(Failure::transport)?
        .to_bytes();
    if code.is_success() {
        return serde_json::from_slice(&body).map_err(|e| Failure::fatal(CallError::Decode(e)));
    }
    Err(failure(code, &body, retry_after))
}

/// An error answer: the Status in its body, or its text when a proxy
/// answered.
fn failure(code: StatusCode, body: &[u8], retry_after: Option<Duration>) -> Failure {
    let status = serde_json::from_slice::<Status>(body)
        .ok()
        .filter(|s| s.code != 0 || !s.message.is_empty());
    let reason = status
        .as_ref()
        .map(|s| s.reason.clone())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| code.canonical_reason().unwrap_or("").to_string());
    let message = status.as_ref().map_or_else(
        || String::from_utf8_lossy(body).trim().to_string(),
        |s| s.message.clone(),
    );
    let in_details = status
        .as_ref()
        .and_then(|s| s.details.as_ref())
        .map(|d| d.retry_after_seconds)
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s.into()));
    Failure {
        error: CallError::Status {
            code: code.as_u16(),
            reason,
            message,
        },
        retryable: code == StatusCode::TOO_MANY_REQUESTS || code.is_server_error(),
        retry_after: retry_after.or(in_details),
        status,
    }
}

fn call_error(what: String, (failure, tries): (Failure, u32)) -> ClusterError {
    ClusterError::Call {
        what,
        tries,
        source: failure.error,
    }
}

/// GETs one object at `url` (`/api/v1/namespaces`) by name, or `None` when
/// there is no such object.
pub async fn get_one<K: DeserializeOwned>(
    client: &Client,
    retry: &Retry,
    url: &str,
    name: &str,
    what: String,
) -> Result<Option<K>, ClusterError> {
    let request = kube::core::Request::new(url);
    let params = kube::api::GetParams::default();
    match get(client, retry, || request.get(name, &params)).await {
        Ok(object) => Ok(Some(object)),
        Err((failure, _)) if failure.code() == Some(404) => Ok(None),
        Err(e) => Err(call_error(what, e)),
    }
}

/// Where an object sorts in its list: the API server lists in the order of
/// its etcd keys, `namespace/name` compared byte by byte.
fn key<K: Resource>(object: &K) -> String {
    let meta = object.meta();
    let name = meta.name.as_deref().unwrap_or_default();
    match &meta.namespace {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_string(),
    }
}

/// Lists `url` (`Api::resource_url`) page by page, handing each page to
/// `f`; returns how many objects it handed on.
///
/// A 410 Gone (the continue token expired, as it does after about five
/// minutes of compaction) continues with the token the 410's Status carries
/// when the API server gives one, else lists again from the start; either
/// way objects up to the last one handed on are skipped (the list is in key
/// order), so none is handed on twice and only that one key is kept.
pub async fn for_each_page<K>(
    client: &Client,
    retry: &Retry,
    url: &str,
    what: &str,
    mut f: impl FnMut(Vec<K>),
) -> Result<usize, ClusterError>
where
    K: Resource + Clone + DeserializeOwned,
{
    let request = kube::core::Request::new(url);
    let mut params = ListParams::default().limit(PAGE_SIZE);
    let mut last: Option<String> = None;
    let mut skip_through: Option<String> = None;
    let (mut listed, mut restarts) = (0, 0);
    loop {
        let page: ObjectList<K> = match get(client, retry, || request.list(&params)).await {
            Ok(page) => page,
            Err((gone, _)) if gone.code() == Some(410) && restarts < retry.restarts => {
                restarts += 1;
                let token = gone
                    .status
                    .and_then(|s| s.metadata?.continue_)
                    .filter(|c| !c.is_empty());
                tracing::warn!(
                    what,
                    restarts,
                    resumed = token.is_some(),
                    "list expired (410 Gone); listing again"
                );
                params.continue_token = token;
                skip_through.clone_from(&last);
                continue;
            }
            Err(e) => return Err(call_error(format!("listing {what}"), e)),
        };
        let next = page.metadata.continue_.filter(|c| !c.is_empty());
        let mut items = page.items;
        if let Some(through) = &skip_through {
            items.retain(|o| key(o) > *through);
        }
        if let Some(object) = items.last() {
            last = Some(key(object));
        }
        listed += items.len();
        tracing::debug!(what, items = items.len(), "listed a page");
        f(items);
        match next {
            Some(token) => params.continue_token = Some(token),
            None => return Ok(listed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_honour_retry_after() {
        let retry = Retry::default();
        let ms = |tried, after: Option<u64>| {
            retry
                .wait(tried, after.map(Duration::from_secs))
                .map(|d| d.as_millis())
        };
        assert_eq!(
            (1..=5).map(|t| ms(t, None)).collect::<Vec<_>>(),
            [Some(200), Some(400), Some(800), Some(1600), None]
        );
        assert_eq!(ms(1, Some(3)), Some(3000));
        assert_eq!(ms(4, Some(1)), Some(1600), "never shorter than the backoff");
        assert_eq!(ms(1, Some(3600)), Some(10_000), "capped");
        let many = Retry {
            tries: 100,
            ..Retry::default()
        };
        assert_eq!(many.wait(99, None), Some(many.max_wait), "no overflow");
    }

    #[test]
    fn which_answers_are_retried() {
        let retryable = |code: u16, body: &str| {
            failure(StatusCode::from_u16(code).unwrap(), body.as_bytes(), None).retryable
        };
        for code in [429, 500, 502, 503, 504] {
            assert!(retryable(code, ""), "{code}");
        }
        for code in [400, 401, 403, 404, 410, 422] {
            assert!(!retryable(code, "{}"), "{code}");
        }
    }

    #[test]
    fn an_error_names_the_status_reason_and_message() {
        let forbidden = failure(
            StatusCode::FORBIDDEN,
            br#"{"kind":"Status","code":403,"reason":"Forbidden","message":"deployments.apps is forbidden"}"#,
            None,
        );
        assert_eq!(
            forbidden.error.to_string(),
            "the API server answered 403 Forbidden: deployments.apps is forbidden"
        );
        let proxy = failure(StatusCode::BAD_GATEWAY, b"upstream down\n", None);
        assert_eq!(
            proxy.error.to_string(),
            "the API server answered 502 Bad Gateway: upstream down"
        );
        let throttled = failure(
            StatusCode::TOO_MANY_REQUESTS,
            br#"{"code":429,"message":"slow down","details":{"retryAfterSeconds":2}}"#,
            None,
        );
        assert_eq!(throttled.retry_after, Some(Duration::from_secs(2)));
        let header_wins = failure(
            StatusCode::TOO_MANY_REQUESTS,
            b"",
            Some(Duration::from_secs(1)),
        );
        assert_eq!(header_wins.retry_after, Some(Duration::from_secs(1)));
    }

    #[test]
    fn keys_sort_as_etcd_keys() {
        let pod = |ns: &str, name: &str| k8s_openapi::api::core::v1::Pod {
            metadata: kube::api::ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        // `a-b/x` before `a/x`: '-' sorts before '/', whatever the
        // namespaces' own order.
        assert!(key(&pod("a-b", "x")) < key(&pod("a", "x")));
        assert!(key(&pod("a", "x")) < key(&pod("a", "y")));
    }
}
