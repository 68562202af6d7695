//! Key layout and argument hashing.
//!
//! Every key is `{prefix}:{namespace}:{key}`. The namespace segment is always present (empty
//! for a function without one), so a namespace clear can never reach a namespace-less entry.
//! The automatic `key` is `{module path}::{fn name}:{md5 hex}`, where the MD5 is taken over the
//! JSON array of the hashed arguments, streamed from the serializer into the digest.

use std::fmt::{self, Write as _};

use md5::{Digest, Md5};
use serde::Serialize;

/// Why a namespace is refused; the message is shown to the user.
pub(crate) fn check_namespace(namespace: &str) -> Result<(), &'static str> {
    if namespace.contains(':') {
        Err("a namespace may not contain `:`")
    } else {
        Ok(())
    }
}

/// Starts a key: `{prefix}:{namespace}:`, with room for `extra` more bytes.
fn start(prefix: &str, namespace: &str, extra: usize) -> String {
    let mut key = String::with_capacity(prefix.len() + namespace.len() + 2 + extra);
    key.push_str(prefix);
    key.push(':');
    key.push_str(namespace);
    key.push(':');
    key
}

/// The key of an entry whose last segment is given: a static key or a key builder's result.
pub(crate) fn explicit(prefix: &str, namespace: &str, key: impl fmt::Display) -> String {
    let mut out = start(prefix, namespace, 32);
    // Writing into a String cannot fail; a Display impl that errors just ends the key early.
    let _ = write!(out, "{key}");
    out
}

/// The automatic key: `{prefix}:{namespace}:{function}:{md5 of the JSON array of args}`.
///
/// `args` serializes as a JSON array (the macro passes a tuple), which keeps the hash input
/// injective: `("ab", "c")` and `("a", "bc")` are different JSON texts.
pub(crate) fn hashed<A: Serialize + ?Sized>(
    prefix: &str,
    namespace: &str,
    function: &str,
    args: &A,
) -> Result<String, serde_json::Error> {
    let mut digest = DigestWriter(Md5::new());
    serde_json::to_writer(&mut digest, args)?;
    let sum = digest.0.finalize();
    let mut out = start(prefix, namespace, function.len() + 1 + 32);
    out.push_str(function);
    out.push(':');
    for byte in sum {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 0xf)] as char);
    }
    Ok(out)
}

/// Feeds serializer output straight into the digest, so no intermediate string is built.
struct DigestWriter(Md5);

impl std::io::Write for DigestWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Escapes the glob characters of Redis `MATCH` patterns (`* ? [ ] \`).
pub(crate) fn escape_glob(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 8);
    for c in raw.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_always_has_the_namespace_segment() {
        assert_eq!(explicit("cache", "catalog", "site"), "cache:catalog:site");
        assert_eq!(explicit("cache", "", "site"), "cache::site");
        let k = hashed("cache", "", "my_crate::f", &(&1u64,)).unwrap();
        assert!(k.starts_with("cache::my_crate::f:"), "{k}");
        assert_eq!(k.len(), "cache::my_crate::f:".len() + 32);
    }

    #[test]
    fn hash_is_md5_of_the_json_array() {
        let k = hashed("p", "n", "f", &(&"ab", &"c")).unwrap();
        // md5(`["ab","c"]`)
        let expected = format!("{:x}", Md5::digest(br#"["ab","c"]"#));
        assert_eq!(k, format!("p:n:f:{expected}"));
        let empty = hashed("p", "n", "f", &[(); 0]).unwrap();
        assert_eq!(empty, format!("p:n:f:{:x}", Md5::digest(b"[]")));
    }

    #[test]
    fn hash_input_is_injective_for_strings() {
        let a = hashed("p", "", "f", &(&"ab", &"c")).unwrap();
        let b = hashed("p", "", "f", &(&"a", &"bc")).unwrap();
        assert_ne!(a, b);
        let c = hashed("p", "", "f", &(&"a,\"b", &"")).unwrap();
        let d = hashed("p", "", "f", &(&"a", &"b")).unwrap();
        assert_ne!(c, d);
    }

    #[test]
    fn globs_are_escaped() {
        assert_eq!(escape_glob("user*"), "user\\*");
        assert_eq!(escape_glob("a?[b]\\"), "a\\?\\[b\\]\\\\");
        assert_eq!(escape_glob("plain"), "plain");
    }

    #[test]
    fn namespaces_with_colons_are_refused() {
        assert!(check_namespace("x:y").is_err());
        assert!(check_namespace("users").is_ok());
    }
}
