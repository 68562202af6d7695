//! The key segments of the response cache layer (`web::ResponseCacheLayer`), under its
//! namespace:
//!
//! ```text
//! http:{path}:{request}              a response, or the list of headers it varies by
//! http:{path}:{request}:{variant}    a response that varies, for one set of those values
//! ```
//!
//! Each part is the MD5 of what it names, in hex. The path's own hash comes first, so that one
//! pattern (`http:{path}:*`) selects every host, query, user and variant of a path: what a
//! write to the path, or below it, clears.

use md5::{Digest, Md5};

use super::args::hex;

/// The first segment: what marks the layer's entries.
const TAG: &str = "http";

/// The MD5 of a path, with a trailing `/` (but for the root) left off, so that `/a/` and `/a`
/// are cleared together.
fn path_sum(path: &str) -> [u8; 16] {
    let trimmed = match path.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    };
    Md5::digest(trimmed.as_bytes()).into()
}

/// The MD5 of `parts`, each preceded by its length (LEB128), so that no two lists share a
/// digest. The short prefix keeps a typical request's parts within one MD5 block.
fn digest_of<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> [u8; 16] {
    let mut md5 = Md5::new();
    for part in parts {
        let mut len = part.len();
        let mut prefix = [0u8; 10];
        let mut used = 0;
        loop {
            let low = (len & 0x7f) as u8;
            len >>= 7;
            prefix[used] = low | if len > 0 { 0x80 } else { 0 };
            used += 1;
            if len == 0 {
                break;
            }
        }
        md5.update(&prefix[..used]);
        md5.update(part);
    }
    md5.finalize().into()
}

/// The key segment of a request to `path`: `http:{md5 of path}:{md5 of parts}`, where `parts`
/// are what else tells requests apart (method, host, path, sorted query, named headers,
/// identity).
pub(crate) fn request<'a>(path: &str, parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut out = String::with_capacity(TAG.len() + 2 + 64);
    out.push_str(TAG);
    out.push(':');
    out.push_str(&hex(&path_sum(path)));
    out.push(':');
    out.push_str(&hex(&digest_of(parts)));
    out
}

/// The key segment of one variant of the response at `primary` (a [`request`] segment), for
/// the values of the request headers the response varies by.
pub(crate) fn variant<'a>(primary: &str, values: impl IntoIterator<Item = &'a [u8]>) -> String {
    format!("{primary}:{}", &*hex(&digest_of(values)))
}

/// The pattern, within the layer's namespace, of every entry of `path`.
pub(crate) fn path_pattern(path: &str) -> String {
    format!("{TAG}:{}:*", &*hex(&path_sum(path)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::wildcard_match;

    #[test]
    fn segments_are_pinned() {
        // md5("/spaces/1") and the md5 of each part's length (LEB128) and bytes.
        let primary = request("/spaces/1", [&b"GET"[..], b"example.com"]);
        assert_eq!(
            primary,
            "http:0e95d236eb9364d51a0a302326a404e8:6fe1deda71ae37db4aa300c017c0f70d"
        );
    }

    #[test]
    fn a_path_pattern_selects_every_request_and_variant_of_the_path_only() {
        let a = request("/spaces/1", [&b"GET"[..], b"q=1"]);
        let b = request("/spaces/1/", [&b"GET"[..], b"q=2"]);
        let v = variant(&a, [&b"en"[..]]);
        let other = request("/spaces/10", [&b"GET"[..]]);
        let pattern = path_pattern("/spaces/1");
        assert!(wildcard_match(&pattern, &a));
        assert!(wildcard_match(&pattern, &b));
        assert!(wildcard_match(&pattern, &v));
        assert!(!wildcard_match(&pattern, &other));
        assert_eq!(path_pattern("/"), path_pattern(""));
    }

    #[test]
    fn long_parts_get_longer_prefixes() {
        let long = vec![b'x'; 300];
        assert_ne!(
            request("/", [long.as_slice(), b""]),
            request("/", [&long[..299], b"x"])
        );
    }

    #[test]
    fn parts_are_length_prefixed() {
        assert_ne!(
            request("/", [&b"ab"[..], b"c"]),
            request("/", [&b"a"[..], b"bc"])
        );
    }
}
