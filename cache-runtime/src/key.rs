//! Key layout and argument hashing.
//!
//! Every key is `{prefix}:{namespace}:{key}`. The namespace segment is always present (empty
//! for a function without one), so a namespace clear can never reach a namespace-less entry.
//! The automatic `key` is `{module path}::{fn name}:{md5 hex}`, where the MD5 is taken over the
//! JSON array of the hashed arguments, streamed from the serializer into the digest.

use std::fmt::{self, Write as _};
use std::io::Write;

use md5::{Digest, Md5};
use serde::Serialize;

use crate::backend::hot::{Inline, InlineWriter};

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

/// One hashed argument, type-erased so that any number of them, of any types, stream into
/// the digest without a tuple (serde stops at 16) and without an intermediate string.
pub struct Arg<'a>(&'a dyn ArgJson);

trait ArgJson {
    fn write_json(&self, out: &mut dyn Write) -> Result<(), serde_json::Error>;
}

impl<T: Serialize + ?Sized> ArgJson for T {
    fn write_json(&self, out: &mut dyn Write) -> Result<(), serde_json::Error> {
        serde_json::to_writer(out, self)
    }
}

impl<'a> Arg<'a> {
    /// Wraps a reference to an argument.
    pub fn new<T: Serialize>(value: &'a T) -> Self {
        Arg(value)
    }
}

/// The automatic key: `{prefix}:{namespace}:{function}:{md5 of the JSON array of args}`.
///
/// The digest input is exactly the JSON array of the arguments (`["ab","c"]`), which keeps it
/// injective: `("ab", "c")` and `("a", "bc")` are different JSON texts. `types` (the type of
/// `Self` for a method, the type arguments of a generic function) is appended to `function`
/// as `<A,B>`, so `A::get` and `B::get`, or `f::<A>` and `f::<B>`, never share entries.
pub(crate) fn hashed(
    prefix: &str,
    namespace: &str,
    function: &str,
    types: &[&str],
    args: &[Arg<'_>],
) -> Result<String, serde_json::Error> {
    let mut digest = DigestWriter(Md5::new());
    write_array(&mut digest, args)?;
    Ok(assemble(
        prefix,
        namespace,
        function,
        types,
        &digest.0.finalize().into(),
    ))
}

/// Writes the JSON array of `args` (`[a,b]`) into `out`, streamed from the serializer.
fn write_array(out: &mut dyn Write, args: &[Arg<'_>]) -> Result<(), serde_json::Error> {
    out.write_all(b"[").map_err(serde_json::Error::io)?;
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.write_all(b",").map_err(serde_json::Error::io)?;
        }
        arg.0.write_json(out)?;
    }
    out.write_all(b"]").map_err(serde_json::Error::io)
}

/// Writes the JSON array of `args` (what [`hashed`] digests) into `inline`: `Ok(false)`
/// when it does not fit there.
pub(crate) fn write_args(inline: &mut Inline, args: &[Arg<'_>]) -> Result<bool, serde_json::Error> {
    let mut out = InlineWriter {
        inline,
        overflowed: false,
    };
    match write_array(&mut out, args) {
        Ok(()) => Ok(true),
        Err(_) if out.overflowed => Ok(false),
        Err(e) => Err(e),
    }
}

/// [`hashed`] of arguments whose JSON array [`write_args`] wrote.
pub(crate) fn from_json(prefix: &str, namespace: &str, function: &str, json: &[u8]) -> String {
    assemble(prefix, namespace, function, &[], &Md5::digest(json).into())
}

/// `{prefix}:{namespace}:{function}<{types}>:{hex of sum}`.
fn assemble(
    prefix: &str,
    namespace: &str,
    function: &str,
    types: &[&str],
    sum: &[u8; 16],
) -> String {
    let types_len: usize = types.iter().map(|t| t.len() + 1).sum();
    let mut out = start(prefix, namespace, function.len() + types_len + 2 + 32);
    out.push_str(function);
    for (i, ty) in types.iter().enumerate() {
        out.push(if i == 0 { '<' } else { ',' });
        out.push_str(ty);
    }
    if !types.is_empty() {
        out.push('>');
    }
    out.push(':');
    out.push_str(&hex(sum));
    out
}

/// Lower-case hex of a digest, built on the stack: pushing 32 `char`s one by one costs more
/// than the digest's last block.
fn hex(sum: &[u8; 16]) -> HexDigest {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (pair, byte) in out.chunks_exact_mut(2).zip(sum) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    HexDigest(out)
}

/// 32 ASCII hex digits.
struct HexDigest([u8; 32]);

impl std::ops::Deref for HexDigest {
    type Target = str;
    fn deref(&self) -> &str {
        // Only ASCII digits and letters were written, so this never fails.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
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
        let k = hashed("cache", "", "my_crate::f", &[], &[Arg::new(&1u64)]).unwrap();
        assert!(k.starts_with("cache::my_crate::f:"), "{k}");
        assert_eq!(k.len(), "cache::my_crate::f:".len() + 32);
    }

    #[test]
    fn hash_is_md5_of_the_json_array() {
        let k = hashed("p", "n", "f", &[], &[Arg::new(&"ab"), Arg::new(&"c")]).unwrap();
        // md5(`["ab","c"]`)
        let expected = format!("{:x}", Md5::digest(br#"["ab","c"]"#));
        assert_eq!(k, format!("p:n:f:{expected}"));
        let empty = hashed("p", "n", "f", &[], &[]).unwrap();
        assert_eq!(empty, format!("p:n:f:{:x}", Md5::digest(b"[]")));
    }

    #[test]
    fn hash_input_is_injective_for_strings() {
        let h =
            |a: &str, b: &str| hashed("p", "", "f", &[], &[Arg::new(&a), Arg::new(&b)]).unwrap();
        assert_ne!(h("ab", "c"), h("a", "bc"));
        assert_ne!(h("a,\"b", ""), h("a", "b"));
        assert_eq!(h("a", "b"), h("a", "b"));
    }

    #[test]
    fn the_digest_is_the_json_of_the_tuple() {
        let args = (1u32, "x", vec![Some(2.5)], ());
        let erased = hashed(
            "p",
            "",
            "f",
            &[],
            &[
                Arg::new(&args.0),
                Arg::new(&args.1),
                Arg::new(&args.2),
                Arg::new(&args.3),
            ],
        )
        .unwrap();
        let json = serde_json::to_vec(&args).unwrap();
        assert_eq!(erased, format!("p::f:{:x}", Md5::digest(&json)));
    }

    #[test]
    fn the_inline_json_makes_the_same_key() {
        let (a, b) = ("x\"y", vec![1u8, 2]);
        let args = [Arg::new(&a), Arg::new(&b), Arg::new(&7u64)];
        let mut inline = Inline::new();
        assert!(write_args(&mut inline, &args).unwrap());
        assert_eq!(inline.as_slice(), br#"["x\"y",[1,2],7]"#);
        assert_eq!(
            from_json("p", "n", "f", inline.as_slice()),
            hashed("p", "n", "f", &[], &args).unwrap()
        );
        let mut empty = Inline::new();
        assert!(write_args(&mut empty, &[]).unwrap());
        assert_eq!(empty.as_slice(), b"[]");
    }

    #[test]
    fn arguments_too_long_for_inline_say_so() {
        let long = "x".repeat(200);
        let mut inline = Inline::new();
        assert!(!write_args(&mut inline, &[Arg::new(&long)]).unwrap());
        let mut map = std::collections::BTreeMap::new();
        map.insert(vec![1u8], 2u8);
        assert!(write_args(&mut Inline::new(), &[Arg::new(&map)]).is_err());
    }

    #[test]
    fn types_are_part_of_the_function_segment() {
        let k = hashed("p", "n", "m::get", &["m::A", "u32"], &[Arg::new(&1)]).unwrap();
        assert!(k.starts_with("p:n:m::get<m::A,u32>:"), "{k}");
        let other = hashed("p", "n", "m::get", &["m::B", "u32"], &[Arg::new(&1)]).unwrap();
        assert_ne!(k, other);
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
