//! What the layer stores: a response (status, headers, body, ETag, when it was stored), or
//! the names of the request headers a response varies by, in a JSON envelope that carries the
//! format's version. An entry of another version does not decode, so it is read as a miss and
//! overwritten, never served.
//!
//! ```text
//! {"v":1,"status":200,"headers":[["content-type","text/html"]],"body":"<p>…","etag":"\"…\"","at":1764763200}
//! {"v":1,"status":200,"headers":[…],"json":{"id":1,…},"etag":"\"…\"","at":1764763200}
//! {"v":1,"status":200,"headers":[…],"body_b64":"iVBORw0…","etag":"\"…\"","at":1764763200}
//! {"v":1,"vary":["accept-language"]}
//! ```

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use base64::Engine as _;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// The version of the stored format: bump it when the envelope changes.
pub(crate) const VERSION: u32 = 1;

/// An entry of the layer.
#[derive(Clone, Debug)]
pub(crate) enum Entry {
    /// A response to serve.
    Response(Arc<Stored>),
    /// The response of this request varies by these request headers: each of their values'
    /// combinations has an entry of its own.
    Varies(Arc<[HeaderName]>),
}

/// A stored response.
#[derive(Debug)]
pub(crate) struct Stored {
    pub(crate) status: StatusCode,
    /// The handler's headers, without those of one connection or one moment (see
    /// `rules::kept_header`).
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// The handler's own, or the quoted MD5 of the body.
    pub(crate) etag: HeaderValue,
    /// When it was stored, in seconds since the Unix epoch: what `Age` is counted from.
    pub(crate) at: u64,
}

/// Seconds since the Unix epoch now (0 if the clock is before it).
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The envelope as written.
#[derive(Serialize)]
struct WireOut<'a> {
    v: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    vary: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<Vec<(&'a str, &'a str)>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    json: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_b64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<u64>,
}

/// The envelope as read: text that needs no unescaping is borrowed from the stored bytes.
#[derive(Deserialize)]
struct WireIn<'a> {
    v: u32,
    #[serde(borrow)]
    vary: Option<Vec<Cow<'a, str>>>,
    status: Option<u16>,
    #[serde(borrow)]
    headers: Option<Vec<(Cow<'a, str>, Cow<'a, str>)>>,
    #[serde(borrow)]
    body: Option<Cow<'a, str>>,
    /// A body that is a JSON document, embedded as it is: read back without unescaping.
    #[serde(borrow)]
    json: Option<&'a RawValue>,
    #[serde(borrow)]
    body_b64: Option<Cow<'a, str>>,
    #[serde(borrow)]
    etag: Option<Cow<'a, str>>,
    at: Option<u64>,
}

impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut wire = WireOut {
            v: VERSION,
            vary: None,
            status: None,
            headers: None,
            body: None,
            json: None,
            body_b64: None,
            etag: None,
            at: None,
        };
        match self {
            Entry::Varies(names) => wire.vary = Some(names.iter().map(|n| n.as_str()).collect()),
            Entry::Response(stored) => {
                let mut headers = Vec::with_capacity(stored.headers.len());
                for (name, value) in &stored.headers {
                    // `rules` keeps only headers whose values are text.
                    let value = value.to_str().map_err(serde::ser::Error::custom)?;
                    headers.push((name.as_str(), value));
                }
                wire.status = Some(stored.status.as_u16());
                wire.headers = Some(headers);
                match std::str::from_utf8(&stored.body) {
                    Ok(text) if looks_like_json(text) => match raw_json(text) {
                        Some(raw) => wire.json = Some(raw),
                        None => wire.body = Some(text),
                    },
                    Ok(text) => wire.body = Some(text),
                    Err(_) => {
                        wire.body_b64 =
                            Some(base64::engine::general_purpose::STANDARD.encode(&stored.body))
                    }
                }
                wire.etag = Some(stored.etag.to_str().map_err(serde::ser::Error::custom)?);
                wire.at = Some(stored.at);
            }
        }
        wire.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireIn::deserialize(deserializer)?;
        if wire.v != VERSION {
            return Err(D::Error::custom(format_args!(
                "response stored in format {}, this version reads {VERSION}",
                wire.v
            )));
        }
        if let Some(vary) = wire.vary {
            let names = vary
                .iter()
                .map(|name| HeaderName::from_bytes(name.as_bytes()).map_err(D::Error::custom))
                .collect::<Result<Arc<[_]>, _>>()?;
            return Ok(Entry::Varies(names));
        }
        let missing = |field| D::Error::custom(format_args!("stored response without {field}"));
        let status = StatusCode::from_u16(wire.status.ok_or_else(|| missing("status"))?)
            .map_err(D::Error::custom)?;
        let wire_headers = wire.headers.ok_or_else(|| missing("headers"))?;
        // Room for what a hit adds (ETag, Cache-Control, Age, X-Cache), so that serving it
        // does not grow the map.
        let mut headers = HeaderMap::with_capacity(wire_headers.len() + 4);
        for (name, value) in wire_headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(D::Error::custom)?;
            let value = HeaderValue::from_str(&value).map_err(D::Error::custom)?;
            headers.append(name, value);
        }
        let body = match (wire.body, wire.body_b64) {
            (None, None) if wire.json.is_some() => {
                Bytes::copy_from_slice(wire.json.map_or("", |raw| raw.get()).as_bytes())
            }
            (Some(Cow::Owned(text)), None) => Bytes::from(text),
            (Some(Cow::Borrowed(text)), None) => Bytes::copy_from_slice(text.as_bytes()),
            (None, Some(b64)) => Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(b64.as_bytes())
                    .map_err(D::Error::custom)?,
            ),
            _ => return Err(missing("a body")),
        };
        let etag = HeaderValue::from_str(&wire.etag.ok_or_else(|| missing("etag"))?)
            .map_err(D::Error::custom)?;
        let at = wire.at.ok_or_else(|| missing("at"))?;
        Ok(Entry::Response(Arc::new(Stored {
            status,
            headers,
            body,
            etag,
            at,
        })))
    }
}

/// Whether a body may be a JSON document (an object or an array), worth checking.
fn looks_like_json(text: &str) -> bool {
    matches!(text.as_bytes().first(), Some(b'{' | b'['))
}

/// The body as a JSON value that reproduces it byte for byte, if it is one.
fn raw_json(text: &str) -> Option<&RawValue> {
    serde_json::from_str::<&RawValue>(text)
        .ok()
        .filter(|raw| raw.get().len() == text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body: &[u8]) -> Entry {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.append("x-thing", HeaderValue::from_static("a"));
        headers.append("x-thing", HeaderValue::from_static("b"));
        Entry::Response(Arc::new(Stored {
            status: StatusCode::CREATED,
            headers,
            body: Bytes::copy_from_slice(body),
            etag: HeaderValue::from_static("\"abc\""),
            at: 1_764_763_200,
        }))
    }

    #[test]
    fn responses_round_trip_text_and_binary_bodies() {
        for body in [&b"{\"a\":\"\xc3\xa9\"}"[..], b"\xff\x00\x89PNG"] {
            let json = serde_json::to_vec(&response(body)).unwrap();
            let Entry::Response(back) = serde_json::from_slice(&json).unwrap() else {
                panic!("not a response");
            };
            assert_eq!(back.status, StatusCode::CREATED);
            assert_eq!(&back.body[..], body);
            assert_eq!(back.headers.get_all("x-thing").iter().count(), 2);
            assert_eq!(back.etag, "\"abc\"");
            assert_eq!(back.at, 1_764_763_200);
        }
        let text = serde_json::to_string(&response(b"hi")).unwrap();
        assert!(text.starts_with(r#"{"v":1,"status":201,"#), "{text}");
    }

    #[test]
    fn json_bodies_are_embedded_and_come_back_byte_for_byte() {
        let cases: [(&[u8], bool); 4] = [
            (br#"{"a":"x\"y","b":[1,2]}"#, true),
            (b"[1, 2 ,3]", true),
            // Only a whole document, without surrounding blanks, is embedded.
            (b"{\"a\":1} ", false),
            (b"{bad", false),
        ];
        for (body, embedded) in cases {
            let json = serde_json::to_string(&response(body)).unwrap();
            assert_eq!(json.contains(r#""json":"#), embedded, "{json}");
            let Entry::Response(back) = serde_json::from_str(&json).unwrap() else {
                panic!("not a response");
            };
            assert_eq!(&back.body[..], body);
        }
    }

    #[test]
    fn vary_lists_round_trip() {
        let entry = Entry::Varies(Arc::from([HeaderName::from_static("accept-language")]));
        let json = serde_json::to_string(&entry).unwrap();
        assert_eq!(json, r#"{"v":1,"vary":["accept-language"]}"#);
        let Entry::Varies(names) = serde_json::from_str(&json).unwrap() else {
            panic!("not a vary list");
        };
        assert_eq!(&names[..], &[HeaderName::from_static("accept-language")]);
    }

    #[test]
    fn other_versions_and_garbage_do_not_decode() {
        let json = serde_json::to_string(&response(b"hi"))
            .unwrap()
            .replace(r#""v":1"#, r#""v":0"#);
        assert!(serde_json::from_str::<Entry>(&json).is_err());
        for garbage in [
            r#"{"status":200}"#,
            r#"{"v":1}"#,
            r#"{"v":1,"status":200,"headers":[],"etag":"\"x\"","at":1}"#,
            r#"{"v":1,"status":99,"headers":[],"body":"","etag":"\"x\"","at":1}"#,
            r#""just a string""#,
        ] {
            assert!(serde_json::from_str::<Entry>(garbage).is_err(), "{garbage}");
        }
    }
}
