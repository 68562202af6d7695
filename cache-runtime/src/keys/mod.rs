//! Every name the crate gives a Redis key or channel, and nothing else: entries, namespace
//! indexes, locks, clearing markers, the invalidation channel, and the patterns and prefixes
//! that select them. The layout is a compatibility promise (entries written by one version are
//! found by the next), so the tests below pin each name to a fixed string.
//!
//! ```text
//! {prefix}:{namespace}:{key}                  an entry (namespace empty without one)
//! {prefix}:{namespace}                        the namespace's index (a sorted set)
//! {prefix}:{namespace}::lock:{key}            the cross-process lock of an entry
//! {prefix}:{namespace}::clearing              index members clears are removing
//! {{prefix}:{namespace}}::clearing            the same on a Redis Cluster (one slot with
//!                                             the index)
//! {prefix}:{namespace}::fence                 the namespace's fence (moved by its clears)
//! {prefix}:::fence                            the fence of everything (and of keys without
//!                                             a namespace)
//! {prefix}:invalidate                         the near-cache invalidation channel
//! ```
//!
//! A key segment that starts with `:` is the crate's own (a lock, a clearing marker), never an
//! entry: no namespace contains `:`, and an entry's key segment is a static key, a key
//! builder's result or `{module path}::{fn}...`, which never starts with `:`.

// The names of Redis keys are part of the layout promise, built and tested whether or not
// the Redis store is.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

mod args;
#[cfg(feature = "axum")]
pub(crate) mod response;

use std::fmt::{self, Write as _};

pub use args::Arg;
#[cfg(test)]
pub(crate) use args::INLINE;
pub(crate) use args::{write_args, Inline};

/// What a clear removes, as the stores see it (the public form is [`Scope`](crate::Scope)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ScopeKind {
    Key { namespace: String, key: String },
    Namespace(String),
    All,
}

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
    // Room for a response cache layer's segment (69 bytes), so that it is never grown.
    let mut out = start(prefix, namespace, 80);
    // Writing into a String cannot fail; a Display impl that errors just ends the key early.
    let _ = write!(out, "{key}");
    out
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
    let sum = args::digest(args)?;
    Ok(assemble(prefix, namespace, function, types, &sum))
}

/// [`hashed`] of arguments whose JSON array [`write_args`] wrote.
pub(crate) fn from_json(prefix: &str, namespace: &str, function: &str, json: &[u8]) -> String {
    assemble(prefix, namespace, function, &[], &args::digest_json(json))
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
    out.push_str(&args::hex(sum));
    out
}

/// The index of a namespace: `{prefix}:{namespace}`, one segment shorter than any entry, so
/// never mistaken for one.
pub(crate) fn index(prefix: &str, namespace: &str) -> String {
    format!("{prefix}:{namespace}")
}

/// The namespace index of an entry, or `None` for a namespace-less entry.
pub(crate) fn index_of<'k>(prefix: &str, key: &'k str) -> Option<&'k str> {
    let rest = key.strip_prefix(prefix)?.strip_prefix(':')?;
    let namespace_len = rest.find(':')?;
    (namespace_len > 0).then(|| &key[..prefix.len() + 1 + namespace_len])
}

/// Whether a key under the prefix is an entry: not a namespace index (`{prefix}:{ns}`), nor
/// one of the crate's own keys (a key segment starting with `:`: a lock, a clearing marker).
pub(crate) fn is_entry(prefix: &[u8], key: &[u8]) -> bool {
    let Some(rest) = key.get(prefix.len() + 1..) else {
        return false;
    };
    match rest.iter().position(|&b| b == b':') {
        Some(colon) => rest.get(colon + 1) != Some(&b':'),
        None => false,
    }
}

/// The lock that guards the computation of the entry `key` across processes:
/// `{prefix}:{namespace}::lock:{key segment}`.
pub(crate) fn lock_of(prefix: &str, key: &str) -> String {
    let head = key
        .get(prefix.len() + 1..)
        .and_then(|rest| rest.find(':'))
        .map_or(key.len(), |colon| prefix.len() + 1 + colon + 1);
    format!("{}:lock:{}", &key[..head], &key[head..])
}

/// Where the clears of a namespace move its index's members while they remove the entries:
/// `{prefix}:{namespace}::clearing`. One per namespace, so that a clear that finds another
/// under way removes that one's members too before it returns.
pub(crate) fn clearing(prefix: &str, namespace: &str) -> String {
    format!("{prefix}:{namespace}::clearing")
}

/// [`clearing`] on a Redis Cluster: `{{prefix}:{namespace}}::clearing`, whose hash tag is the
/// name of the namespace's index, so that both are in one slot (the index, without braces,
/// hashes whole) and one script moves the index's members into it.
pub(crate) fn clearing_in_cluster(prefix: &str, namespace: &str) -> String {
    format!("{{{}}}::clearing", index(prefix, namespace))
}

/// The fence of `namespace`, which its clears move: `{prefix}:{namespace}::fence`. The fence
/// of the empty namespace, `{prefix}:::fence`, is the fence of everything: full clears move
/// it, and clears of keys without a namespace.
pub(crate) fn fence(prefix: &str, namespace: &str) -> String {
    format!("{prefix}:{namespace}::fence")
}

/// The namespace of the entry `key` (empty for an entry without one, or a key that is not
/// under `prefix`).
pub(crate) fn namespace_of<'k>(prefix: &str, key: &'k str) -> &'k str {
    key.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|rest| rest.split_once(':'))
        .map_or("", |(namespace, _)| namespace)
}

/// What a key under the prefix is, as a full clear sorts what its `SCAN` finds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Kind<'k> {
    /// An entry: removed.
    Entry,
    /// The index (`{prefix}:{ns}`) or the clearing set (`{prefix}:{ns}::clearing`) of a
    /// namespace: its members are removed, as a namespace clear does.
    Members(&'k str),
    /// The fence of everything: kept, since the clear just moved it.
    FenceOfAll,
    /// Anything else of the crate's (a namespace's fence, a lock, a leftover): removed.
    Own,
}

/// What `key` (under `prefix`) is.
pub(crate) fn kind<'k>(prefix: &str, key: &'k str) -> Kind<'k> {
    if is_entry(prefix.as_bytes(), key.as_bytes()) {
        return Kind::Entry;
    }
    let Some(rest) = key.strip_prefix(prefix).and_then(|r| r.strip_prefix(':')) else {
        return Kind::Own;
    };
    if rest == "::fence" {
        return Kind::FenceOfAll;
    }
    match rest.split_once(':') {
        None => Kind::Members(rest),
        Some((ns, ":clearing")) => Kind::Members(ns),
        Some(_) => Kind::Own,
    }
}

/// The channel every invalidation of entries under `prefix` is published on.
pub(crate) fn channel(prefix: &str) -> String {
    format!("{prefix}:invalidate")
}

/// The part of a key every entry of `scope` starts with, and whether it is the whole key.
pub(crate) fn scope_start(prefix: &str, scope: &ScopeKind) -> (String, bool) {
    match scope {
        ScopeKind::Key { namespace, key } => (format!("{prefix}:{namespace}:{key}"), true),
        ScopeKind::Namespace(ns) => (format!("{prefix}:{ns}:"), false),
        ScopeKind::All => (format!("{prefix}:"), false),
    }
}

/// The `SCAN MATCH` pattern of every key under `prefix`, its glob characters escaped.
pub(crate) fn all_pattern(prefix: &str) -> String {
    format!("{}:*", escape_glob(prefix))
}

/// The `MATCH` pattern of the entries of `namespace` whose key segment matches `pattern`, in
/// which only `*` (any run) and `?` (any one character) are wildcards: every other glob
/// character, of the prefix, the namespace and the pattern, is escaped, so the pattern can
/// only ever match keys under `{prefix}:{namespace}:`.
pub(crate) fn members_pattern(prefix: &str, namespace: &str, pattern: &str) -> String {
    let mut out = format!("{}:{}:", escape_glob(prefix), escape_glob(namespace));
    for c in pattern.chars() {
        if matches!(c, '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters and `?` any one
/// (the same as [`members_pattern`] asks of Redis).
pub(crate) fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative matching with one backtrack point: linear in practice, no recursion.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some('?') => {
                pi += 1;
                ti += 1;
            }
            Some(&c) if c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Escapes the glob characters of Redis `MATCH` patterns (`* ? [ ] \`).
fn escape_glob(raw: &str) -> String {
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

    /// The layout, byte for byte: entries written by earlier versions must still be found.
    #[test]
    fn every_name_is_what_it_always_was() {
        assert_eq!(
            clearing_in_cluster("cache", "catalog"),
            "{cache:catalog}::clearing"
        );
        assert_eq!(explicit("cache", "catalog", "site"), "cache:catalog:site");
        assert_eq!(explicit("cache", "", "site"), "cache::site");
        assert_eq!(
            hashed(
                "cache",
                "catalog",
                "shop::get_product",
                &[],
                &[Arg::new(&42u64)]
            )
            .unwrap(),
            // md5(`[42]`)
            "cache:catalog:shop::get_product:b358e7d6ea3cae2a7ca29ee59888f401"
        );
        assert_eq!(
            hashed("cache", "", "m::get", &["m::A"], &[Arg::new(&"x")]).unwrap(),
            // md5(`["x"]`)
            "cache::m::get<m::A>:4559c071008d3779d3efd0caa5135728"
        );
        assert_eq!(index("cache", "users"), "cache:users");
        assert_eq!(
            lock_of("cache", "cache:users:f:abc"),
            "cache:users::lock:f:abc"
        );
        assert_eq!(lock_of("cache", "cache::m::f:abc"), "cache:::lock:m::f:abc");
        assert_eq!(clearing("cache", "users"), "cache:users::clearing");
        assert_eq!(channel("cache"), "cache:invalidate");
        assert_eq!(fence("cache", "users"), "cache:users::fence");
        assert_eq!(fence("cache", ""), "cache:::fence");
        assert!(!is_entry(b"cache", b"cache:users::fence"));
        assert!(!is_entry(b"cache", b"cache:::fence"));
        assert!(
            is_entry(b"cache", b"cache:users:fence"),
            "an entry with key `fence`"
        );
        assert_eq!(kind("cache", "cache:users:k"), Kind::Entry);
        assert_eq!(kind("cache", "cache:users"), Kind::Members("users"));
        assert_eq!(
            kind("cache", "cache:users::clearing"),
            Kind::Members("users")
        );
        assert_eq!(kind("cache", "cache:::fence"), Kind::FenceOfAll);
        assert_eq!(kind("cache", "cache:users::fence"), Kind::Own);
        assert_eq!(kind("cache", "cache:users::lock:k"), Kind::Own);
        assert_eq!(
            kind("cache", "cache:users::clearing:00000000000000ab"),
            Kind::Own
        );
        assert_eq!(namespace_of("cache", "cache:users:f:abc"), "users");
        assert_eq!(namespace_of("cache", "cache::f:abc"), "");
        assert_eq!(namespace_of("a:b", "a:b:ns:k"), "ns");
        let key = ScopeKind::Key {
            namespace: "catalog".into(),
            key: "product_123".into(),
        };
        assert_eq!(
            scope_start("cache", &key),
            ("cache:catalog:product_123".to_owned(), true)
        );
        assert_eq!(
            scope_start("cache", &ScopeKind::Namespace("users".into())),
            ("cache:users:".to_owned(), false)
        );
        assert_eq!(
            scope_start("cache", &ScopeKind::All),
            ("cache:".to_owned(), false)
        );
        assert_eq!(all_pattern("cache"), "cache:*");
        assert_eq!(all_pattern("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\:*");
    }

    #[test]
    fn namespace_indexes_are_one_segment_shorter_than_entries() {
        assert_eq!(index_of("cache", "cache:users:f:abc"), Some("cache:users"));
        assert_eq!(index_of("cache", "cache:users:k"), Some("cache:users"));
        assert_eq!(
            index_of("cache", "cache::f:abc"),
            None,
            "no namespace, no index"
        );
        assert_eq!(index_of("a:b", "a:b:ns:k"), Some("a:b:ns"));
        assert!(is_entry(b"cache", b"cache:users:k"));
        assert!(is_entry(b"cache", b"cache::k"));
        assert!(!is_entry(b"cache", b"cache:users"));
        assert!(!is_entry(b"cache", b"cache:users::lock:f:abc"));
        assert!(!is_entry(b"cache", b"cache:::lock:m::f:abc"));
        assert!(!is_entry(
            b"cache",
            b"cache:users::clearing:00000000000000ab"
        ));
    }

    #[test]
    fn layout_always_has_the_namespace_segment() {
        let k = hashed("cache", "", "my_crate::f", &[], &[Arg::new(&1u64)]).unwrap();
        assert!(k.starts_with("cache::my_crate::f:"), "{k}");
        assert_eq!(k.len(), "cache::my_crate::f:".len() + 32);
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
    }

    #[test]
    fn types_are_part_of_the_function_segment() {
        let k = hashed("p", "n", "m::get", &["m::A", "u32"], &[Arg::new(&1)]).unwrap();
        assert!(k.starts_with("p:n:m::get<m::A,u32>:"), "{k}");
        let other = hashed("p", "n", "m::get", &["m::B", "u32"], &[Arg::new(&1)]).unwrap();
        assert_ne!(k, other);
    }

    #[test]
    fn patterns_stay_inside_their_namespace() {
        assert_eq!(
            members_pattern("cache", "users", "user:*"),
            "cache:users:user:*"
        );
        assert_eq!(
            members_pattern("c*", "u?", "[a]\\"),
            "c\\*:u\\?:\\[a\\]\\\\"
        );
        assert!(wildcard_match("user:*", "user:42"));
        assert!(wildcard_match("u?er:*:x", "user:1:2:x"));
        assert!(!wildcard_match("user:*", "admin:1"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("?", ""));
        assert!(wildcard_match("a*b*c", "axxbyyc"));
        assert!(!wildcard_match("a*b*c", "axxbyy"));
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
