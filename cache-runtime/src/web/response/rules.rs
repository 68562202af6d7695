//! The rules of a shared cache the layer follows: which requests it may answer from the
//! cache, what a request's key is made of, which responses it may store and which of their
//! headers, and when a validator matches.

use std::borrow::Cow;
use std::time::SystemTime;

use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, COOKIE, HOST, RANGE, SET_COOKIE, VARY,
};
use axum::http::{request, response, HeaderMap, HeaderName, HeaderValue, Method, Uri};
use http_cache_semantics::{CacheOptions, CachePolicy, RequestLike};

/// What the layer does with a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// A GET or HEAD it may answer: `fresh` when the client asked for a fresh copy
    /// (`Cache-Control: no-cache`), which replaces the entry.
    Read { head: bool, fresh: bool },
    /// A write (POST, PUT, PATCH, DELETE): passed on, and on success it clears the path.
    Write,
    /// Passed on untouched (`X-Cache: SKIP`).
    Pass,
}

/// What the layer does with `parts`: `obey_no_cache` honours a client's `no-cache`,
/// `identity` is what the layer's `vary_by` found (`None` without one).
pub(crate) fn plan(parts: &request::Parts, obey_no_cache: bool, identity: Option<&str>) -> Plan {
    let head = match parts.method {
        Method::GET => false,
        Method::HEAD => true,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE => return Plan::Write,
        _ => return Plan::Pass,
    };
    let directives = directives(parts.headers.get_all(CACHE_CONTROL));
    if directives.iter().any(|d| d == "no-store") || parts.headers.contains_key(RANGE) {
        return Plan::Pass;
    }
    // A shared cache answers a request with credentials only when the page is keyed by
    // whose it is (RFC 9111 §3.5; what Varnish and Django do by default).
    let credentials =
        parts.headers.contains_key(AUTHORIZATION) || parts.headers.contains_key(COOKIE);
    if credentials && identity.is_none() {
        return Plan::Pass;
    }
    let fresh = obey_no_cache && directives.iter().any(|d| d == "no-cache");
    Plan::Read { head, fresh }
}

/// The lower-cased directive names of `Cache-Control` values.
fn directives<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Vec<String> {
    values
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| {
            let name = d.split('=').next().unwrap_or("");
            name.trim().to_ascii_lowercase()
        })
        .filter(|d| !d.is_empty())
        .collect()
}

/// The host a request was sent to, lower-cased.
pub(crate) fn host(parts: &request::Parts) -> Cow<'_, str> {
    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    match host.bytes().any(|b| b.is_ascii_uppercase()) {
        true => Cow::Owned(host.to_ascii_lowercase()),
        false => Cow::Borrowed(host),
    }
}

/// The query's parameters in byte order, so that their order in the request does not matter.
pub(crate) fn sorted_query(uri: &Uri) -> Cow<'_, str> {
    let query = uri.query().unwrap_or("");
    if !query.contains('&') {
        return Cow::Borrowed(query);
    }
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort_unstable();
    Cow::Owned(pairs.join("&"))
}

/// The values of header `name` in a request, as one normalised text: each value trimmed,
/// inner runs of blanks made one space, joined by `, `.
pub(crate) fn header_text(headers: &HeaderMap, name: &HeaderName) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, value) in headers.get_all(name).iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        let mut blank = false;
        for &b in value.as_bytes().trim_ascii() {
            if b == b' ' || b == b'\t' {
                blank = true;
                continue;
            }
            if blank {
                out.push(b' ');
                blank = false;
            }
            out.push(b);
        }
    }
    out
}

/// The request headers a response varies by: `None` for `Vary: *` (never stored), else the
/// names, lower-cased, sorted and without repeats (empty: it does not vary).
pub(crate) fn vary(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for value in headers.get_all(VARY) {
        let Ok(value) = value.to_str() else {
            return None;
        };
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return None;
            }
            names.push(HeaderName::from_bytes(name.as_bytes()).ok()?);
        }
    }
    names.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    Some(names)
}

/// Why a response is passed on and not stored, if it is.
pub(crate) fn unstorable(
    uri: &Uri,
    parts: &response::Parts,
    max_body: usize,
) -> Option<&'static str> {
    if !parts.status.is_success() || parts.status.as_u16() == 206 {
        return Some("not a 2xx (or a partial) response");
    }
    if parts.headers.contains_key(SET_COOKIE) {
        return Some("it sets a cookie");
    }
    if vary(&parts.headers).is_none() {
        return Some("Vary: *");
    }
    let length = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|length| length > max_body as u64) {
        return Some("its body is larger than the layer's max_body_size");
    }
    // RFC 9111's rules of a shared cache (no-store, private, cacheable status), read by
    // http-cache-semantics. It is shown the request without any of its headers: the
    // credentials rule is the layer's own (`plan`), and the policy keeps what it is shown.
    let policy = CachePolicy::new_options(
        &Bare(uri),
        parts,
        SystemTime::now(),
        CacheOptions::default(),
    );
    if !policy.is_storable() {
        return Some(
            "its Cache-Control (no-store, private) or status forbids a shared cache to store it",
        );
    }
    if parts.headers.values().any(|v| v.to_str().is_err()) {
        return Some("a header value is not text");
    }
    None
}

/// A GET of `uri` with no headers, as http-cache-semantics sees the request.
struct Bare<'a>(&'a Uri);

static NO_HEADERS: std::sync::LazyLock<HeaderMap> = std::sync::LazyLock::new(HeaderMap::new);

impl RequestLike for Bare<'_> {
    fn uri(&self) -> Uri {
        self.0.clone()
    }
    fn is_same_uri(&self, other: &Uri) -> bool {
        self.0 == other
    }
    fn method(&self) -> &Method {
        &Method::GET
    }
    fn headers(&self) -> &HeaderMap {
        &NO_HEADERS
    }
}

/// Whether a stored response keeps header `name`: not those of one connection (hop-by-hop),
/// of one moment (`Date`, `Age`) or the layer's own, nor `Content-Length` (the body tells).
pub(crate) fn kept_header(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
            | "date"
            | "age"
            | "x-cache"
            | "set-cookie"
    )
}

/// Whether one of the request's `If-None-Match` values matches `etag` (the weak comparison
/// RFC 9110 §13.1.2 prescribes for it, or `*`).
pub(crate) fn not_modified(validators: &[HeaderValue], etag: &HeaderValue) -> bool {
    let ours = weak(etag.as_bytes());
    validators
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || weak(tag.as_bytes()) == ours)
}

fn weak(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

/// The path and each of its parents but the root: `/a/b/c`, `/a/b`, `/a` (for `/`, itself).
pub(crate) fn path_and_parents(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = path.trim_end_matches('/');
    if rest.is_empty() {
        return vec!["/"];
    }
    while !rest.is_empty() {
        out.push(rest);
        rest = match rest.rfind('/') {
            Some(at) => &rest[..at],
            None => "",
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{Request, Response, StatusCode};

    fn parts(builder: axum::http::request::Builder) -> request::Parts {
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn plans() {
        let get = parts(Request::get("/a"));
        assert_eq!(
            plan(&get, true, None),
            Plan::Read {
                head: false,
                fresh: false
            }
        );
        let head = parts(Request::head("/a"));
        assert_eq!(
            plan(&head, true, None),
            Plan::Read {
                head: true,
                fresh: false
            }
        );
        let no_cache = parts(Request::get("/a").header("cache-control", "max-age=0, No-Cache"));
        assert_eq!(
            plan(&no_cache, true, None),
            Plan::Read {
                head: false,
                fresh: true
            }
        );
        assert_eq!(
            plan(&no_cache, false, None),
            Plan::Read {
                head: false,
                fresh: false
            }
        );
        let no_store = parts(Request::get("/a").header("cache-control", "no-store"));
        assert_eq!(plan(&no_store, true, None), Plan::Pass);
        let cookie = parts(Request::get("/a").header("cookie", "s=1"));
        assert_eq!(plan(&cookie, true, None), Plan::Pass);
        assert_eq!(
            plan(&cookie, true, Some("u1")),
            Plan::Read {
                head: false,
                fresh: false
            }
        );
        let auth = parts(Request::get("/a").header("authorization", "Bearer x"));
        assert_eq!(plan(&auth, true, None), Plan::Pass);
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            let write = parts(Request::builder().method(method).uri("/a"));
            assert_eq!(plan(&write, true, None), Plan::Write);
        }
        let options = parts(Request::builder().method("OPTIONS").uri("/a"));
        assert_eq!(plan(&options, true, None), Plan::Pass);
        let range = parts(Request::get("/a").header("range", "bytes=0-1"));
        assert_eq!(plan(&range, true, None), Plan::Pass);
    }

    #[test]
    fn queries_sort_and_headers_normalise() {
        let a: Uri = "/p?b=2&a=1&&c".parse().unwrap();
        let b: Uri = "/p?c&a=1&b=2".parse().unwrap();
        assert_eq!(sorted_query(&a), sorted_query(&b));
        let mut headers = HeaderMap::new();
        headers.append("accept-language", HeaderValue::from_static("  en,   fr "));
        headers.append("accept-language", HeaderValue::from_static("de"));
        let name = HeaderName::from_static("accept-language");
        assert_eq!(header_text(&headers, &name), b"en, fr, de");
    }

    #[test]
    fn vary_names_and_star() {
        let mut headers = HeaderMap::new();
        headers.append(
            "vary",
            HeaderValue::from_static("Accept-Language, accept-encoding"),
        );
        headers.append("vary", HeaderValue::from_static("accept-language"));
        let names = vary(&headers).unwrap();
        assert_eq!(names, ["accept-encoding", "accept-language"]);
        headers.append("vary", HeaderValue::from_static("*"));
        assert!(vary(&headers).is_none());
    }

    fn response_parts(status: u16, headers: &[(&str, &str)]) -> response::Parts {
        let mut builder = Response::builder().status(StatusCode::from_u16(status).unwrap());
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn storable_responses() {
        let uri: Uri = "/a".parse().unwrap();
        let ok = |status, headers: &[(&str, &str)]| {
            unstorable(&uri, &response_parts(status, headers), 1024).is_none()
        };
        assert!(ok(200, &[]));
        assert!(ok(200, &[("cache-control", "max-age=60")]));
        assert!(ok(203, &[("cache-control", "max-age=60")]));
        // A status RFC 9111 does not define as understood by a cache (http-cache-semantics).
        assert!(!ok(201, &[("cache-control", "max-age=60")]));
        assert!(ok(200, &[("cache-control", "no-cache")]));
        assert!(!ok(404, &[]));
        assert!(!ok(500, &[("cache-control", "max-age=60")]));
        assert!(!ok(206, &[]));
        assert!(!ok(200, &[("set-cookie", "s=1")]));
        assert!(!ok(200, &[("cache-control", "private")]));
        assert!(!ok(200, &[("cache-control", "no-store")]));
        assert!(!ok(200, &[("vary", "*")]));
        assert!(!ok(200, &[("content-length", "2048")]));
        assert!(ok(200, &[("content-length", "1024")]));
    }

    #[test]
    fn etags_match_weakly_and_by_star() {
        let etag = HeaderValue::from_static("\"abc\"");
        let req = |v: &'static str| [HeaderValue::from_static(v)];
        assert!(not_modified(&req("\"abc\""), &etag));
        assert!(not_modified(&req("W/\"abc\""), &etag));
        assert!(not_modified(&req("\"x\", \"abc\""), &etag));
        assert!(not_modified(&req("*"), &etag));
        assert!(!not_modified(&req("\"abd\""), &etag));
        assert!(!not_modified(&[], &etag));
    }

    #[test]
    fn parents() {
        assert_eq!(
            path_and_parents("/spaces/1/items/2"),
            [
                "/spaces/1/items/2",
                "/spaces/1/items",
                "/spaces/1",
                "/spaces"
            ]
        );
        assert_eq!(path_and_parents("/spaces/"), ["/spaces"]);
        assert_eq!(path_and_parents("/"), ["/"]);
    }
}
