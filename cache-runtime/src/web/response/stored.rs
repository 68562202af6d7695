//! What the layer stores: a response (status, headers, body, ETag, when it was stored), or
//! the names of the request headers a response varies by.
//!
//! Entries are written as a binary record (format 2): a response is bytes, not a value, and
//! reading it back from JSON cost a hit about 8,900 instructions of the layer's 44,000 (the
//! envelope's fields, a body embedded as a raw JSON value, a header map rebuilt value by
//! value; callgrind, 2026-12-03), against a few hundred for the record, whose body and header
//! values are slices of one copy of the stored bytes.
//!
//! ```text
//! 00 'R' 'C' 02                     magic and format
//! 'R' status:u16 at:u64 etag:u16+bytes count:u16 {name:u16+bytes value:u32+bytes}* body
//! 'V' count:u16 {name:u16+bytes}*   the headers a response varies by
//! ```
//!
//! (Integers big-endian; `at` in seconds since the Unix epoch; the body is the rest.) The
//! JSON envelope of format 1, which earlier versions of the layer wrote, is still read, so
//! that its entries are found after an upgrade:
//!
//! ```text
//! {"v":1,"status":200,"headers":[["content-type","text/html"]],"body":"<p>…","etag":"\"…\"","at":1764763200}
//! {"v":1,"status":200,"headers":[…],"json":{"id":1,…},"etag":"\"…\"","at":1764763200}
//! {"v":1,"status":200,"headers":[…],"body_b64":"iVBORw0…","etag":"\"…\"","at":1764763200}
//! {"v":1,"vary":["accept-language"]}
//! ```
//!
//! An entry of any other format does not decode, so it is read as a miss and overwritten,
//! never served.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use base64::Engine as _;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// The format of the JSON envelope, still read.
pub(crate) const VERSION: u32 = 1;

/// What every record starts with: a byte no JSON text starts with, then its format (bump it
/// when the record changes).
const MAGIC: [u8; 4] = [0, b'R', b'C', 2];

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

impl Entry {
    /// The record of this entry (see the module's documentation).
    pub(crate) fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        let too_long = |what| bad(format_args!("{what} too long to store"));
        let short = |len: usize, what| u16::try_from(len).map_err(|_| too_long(what));
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        match self {
            Entry::Varies(names) => {
                out.push(b'V');
                out.extend_from_slice(&short(names.len(), "vary list")?.to_be_bytes());
                for name in names.iter() {
                    out.extend_from_slice(
                        &short(name.as_str().len(), "header name")?.to_be_bytes(),
                    );
                    out.extend_from_slice(name.as_str().as_bytes());
                }
            }
            Entry::Response(stored) => {
                let heads: usize = stored
                    .headers
                    .iter()
                    .map(|(name, value)| 6 + name.as_str().len() + value.len())
                    .sum();
                out.reserve(1 + 2 + 8 + 2 + stored.etag.len() + 2 + heads + stored.body.len());
                out.push(b'R');
                out.extend_from_slice(&stored.status.as_u16().to_be_bytes());
                out.extend_from_slice(&stored.at.to_be_bytes());
                out.extend_from_slice(&short(stored.etag.len(), "ETag")?.to_be_bytes());
                out.extend_from_slice(stored.etag.as_bytes());
                out.extend_from_slice(&short(stored.headers.len(), "header list")?.to_be_bytes());
                for (name, value) in &stored.headers {
                    let value_len = u32::try_from(value.len()).map_err(|_| too_long("header"))?;
                    out.extend_from_slice(
                        &short(name.as_str().len(), "header name")?.to_be_bytes(),
                    );
                    out.extend_from_slice(name.as_str().as_bytes());
                    out.extend_from_slice(&value_len.to_be_bytes());
                    out.extend_from_slice(value.as_bytes());
                }
                out.extend_from_slice(&stored.body);
            }
        }
        Ok(out)
    }

    /// The entry of stored bytes: a record, or the JSON envelope of format 1.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Entry, serde_json::Error> {
        match bytes.strip_prefix(&MAGIC[..3]) {
            Some(rest) => Record::entry(rest),
            None => crate::codec::decode(bytes),
        }
    }
}

/// What follows a record's magic, read front to back: `rest` is what is left of `whole`,
/// whose slices the body and the header values become.
struct Record<'a> {
    whole: Bytes,
    rest: &'a [u8],
}

impl<'a> Record<'a> {
    fn entry(bytes: &'a [u8]) -> Result<Entry, serde_json::Error> {
        let mut record = Record {
            whole: Bytes::new(),
            rest: bytes,
        };
        let [format, kind] = record.array()?;
        if format != MAGIC[3] {
            return Err(bad(format_args!(
                "response stored in format {format}, this version reads {}",
                MAGIC[3]
            )));
        }
        match kind {
            b'V' => {
                let count = record.u16()?;
                let names = (0..count)
                    .map(|_| record.name())
                    .collect::<Result<Arc<[_]>, _>>()?;
                match record.rest.is_empty() {
                    true => Ok(Entry::Varies(names)),
                    false => Err(bad("stored vary list with bytes after it")),
                }
            }
            b'R' => {
                let [s0, s1, a0, a1, a2, a3, a4, a5, a6, a7, e0, e1] = record.array()?;
                let status = StatusCode::from_u16(u16::from_be_bytes([s0, s1])).map_err(bad)?;
                let at = u64::from_be_bytes([a0, a1, a2, a3, a4, a5, a6, a7]);
                // One copy of what is left; the ETag, the header values and the body share it.
                record.whole = Bytes::copy_from_slice(record.rest);
                let etag = record.value(u16::from_be_bytes([e0, e1]).into())?;
                let count = record.u16()?;
                // Room for what a hit adds (ETag, Cache-Control, Age, X-Cache), so that
                // serving it does not grow the map.
                let mut headers = HeaderMap::with_capacity(usize::from(count) + 4);
                for _ in 0..count {
                    let name = record.name()?;
                    let len = usize::try_from(u32::from_be_bytes(record.array()?)).map_err(bad)?;
                    headers.append(name, record.value(len)?);
                }
                let body = record.whole.slice(record.whole.len() - record.rest.len()..);
                Ok(Entry::Response(Arc::new(Stored {
                    status,
                    headers,
                    body,
                    etag,
                    at,
                })))
            }
            kind => Err(bad(format_args!("unknown kind of entry {kind}"))),
        }
    }

    /// The next `len` bytes.
    fn take(&mut self, len: usize) -> Result<&'a [u8], serde_json::Error> {
        let (taken, rest) = self
            .rest
            .split_at_checked(len)
            .ok_or_else(|| bad("stored response cut short"))?;
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], serde_json::Error> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, serde_json::Error> {
        self.array().map(u16::from_be_bytes)
    }

    fn name(&mut self) -> Result<HeaderName, serde_json::Error> {
        let len = self.u16()?;
        HeaderName::from_bytes(self.take(len.into())?).map_err(bad)
    }

    /// The next `len` bytes as a header value sharing `whole` (once it is set).
    fn value(&mut self, len: usize) -> Result<HeaderValue, serde_json::Error> {
        let start = self.whole.len() - self.rest.len();
        self.take(len)?;
        HeaderValue::from_maybe_shared(self.whole.slice(start..start + len)).map_err(bad)
    }
}

fn bad(why: impl std::fmt::Display) -> serde_json::Error {
    <serde_json::Error as serde::de::Error>::custom(why)
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

    fn record(entry: &Entry) -> Vec<u8> {
        entry.encode().unwrap()
    }

    #[test]
    fn records_round_trip_responses_and_vary_lists() {
        for body in [&b"{\"a\":\"\xc3\xa9\"}"[..], b"\xff\x00\x89PNG", b""] {
            let bytes = record(&response(body));
            assert_eq!(&bytes[..5], b"\0RC\x02R");
            let Entry::Response(back) = Entry::decode(&bytes).unwrap() else {
                panic!("not a response");
            };
            assert_eq!(back.status, StatusCode::CREATED);
            assert_eq!(&back.body[..], body);
            let things: Vec<_> = back.headers.get_all("x-thing").iter().collect();
            assert_eq!(things, ["a", "b"]);
            assert_eq!(back.headers["content-type"], "text/plain");
            assert_eq!(back.etag, "\"abc\"");
            assert_eq!(back.at, 1_764_763_200);
        }
        let names: Arc<[HeaderName]> = Arc::from([
            HeaderName::from_static("accept-language"),
            HeaderName::from_static("x-tenant"),
        ]);
        let Entry::Varies(back) = Entry::decode(&record(&Entry::Varies(names.clone()))).unwrap()
        else {
            panic!("not a vary list");
        };
        assert_eq!(back, names);
    }

    #[test]
    fn format_1_json_is_still_read() {
        let json = serde_json::to_vec(&response(b"hi")).unwrap();
        let Entry::Response(back) = Entry::decode(&json).unwrap() else {
            panic!("not a response");
        };
        assert_eq!(&back.body[..], b"hi");
    }

    #[test]
    fn cut_short_other_formats_and_garbage_records_do_not_decode() {
        let whole = record(&response(b"body"));
        // Every cut before the body is refused (a cut inside the body cannot be told).
        let body_at = whole.len() - 4;
        for cut in 0..body_at {
            assert!(Entry::decode(&whole[..cut]).is_err(), "cut at {cut}");
        }
        let mut later = whole.clone();
        later[3] = 3;
        assert!(Entry::decode(&later).is_err());
        let mut kind = whole.clone();
        kind[4] = b'X';
        assert!(Entry::decode(&kind).is_err());
        let vary = record(&Entry::Varies(Arc::from([HeaderName::from_static("a")])));
        assert!(Entry::decode(&[&vary[..], b"x"].concat()).is_err());
        // A header value with a newline, a name with a space, a status of 1000: refused.
        for (from, to) in [
            (&b"text/plain"[..], &b"text\nplain"[..]),
            (b"x-thing", b"x thing"),
        ] {
            let at = whole.windows(from.len()).position(|w| w == from).unwrap();
            let mut bad = whole.clone();
            bad[at..at + from.len()].copy_from_slice(to);
            assert!(
                Entry::decode(&bad).is_err(),
                "{}",
                String::from_utf8_lossy(to)
            );
        }
        let mut status = whole.clone();
        status[5..7].copy_from_slice(&1000u16.to_be_bytes());
        assert!(Entry::decode(&status).is_err());
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
