//! The arguments of `#[cache(...)]`, parsed into [`CacheArgs`].
//!
//! Everything that can be checked without looking at the function is checked here; what needs
//! the function's arguments (`skip` names, `key` placeholders) is checked in `expand.rs`.

use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{token, Expr, ExprLit, ExprUnary, Ident, Lit, LitStr, Token, UnOp};

/// The TTL used when `expire` is not given.
pub(crate) const DEFAULT_EXPIRE: u64 = 60;

const ARGUMENTS: [&str; 11] = [
    "expire",
    "namespace",
    "key",
    "key_builder",
    "skip",
    "returns",
    "lock",
    "jitter",
    "refresh",
    "stale_if_error",
    "cache",
];

/// The arguments of one `#[cache(...)]` attribute. Every field is optional.
#[derive(Default)]
pub(crate) struct CacheArgs {
    /// `expire = N`: the TTL in seconds, at least 1.
    pub(crate) expire: Option<u64>,
    /// `namespace = "..."`: never empty, never contains `:`.
    pub(crate) namespace: Option<String>,
    /// `key = "..."` or `key_builder = EXPR`.
    pub(crate) key: Option<Key>,
    /// `skip = [a, b]`, without duplicates, in the order written.
    pub(crate) skip: Vec<Ident>,
    /// `returns = "value" | "result" | "option"`.
    pub(crate) returns: Option<Mode>,
    /// `lock = true`: a cross-process lock in Redis around a miss.
    pub(crate) lock: bool,
    /// `jitter = 0.1`: the TTL is shortened by a random fraction up to this.
    pub(crate) jitter: Option<f64>,
    /// `refresh = N`: a hit with at most N seconds left is recomputed by one caller.
    pub(crate) refresh: Option<u64>,
    /// `stale_if_error = N`: a copy outlives the TTL by N seconds, served when the body fails.
    pub(crate) stale_if_error: Option<u64>,
    /// `cache = EXPR`: the `&Cache` (or `Option<&Cache>`) to use instead of the default.
    pub(crate) cache: Option<Box<Expr>>,
}

/// Where the cache key comes from when the arguments are not hashed.
pub(crate) enum Key {
    /// `key = "..."`: a `format!`-style template whose placeholders name arguments.
    Template {
        lit: LitStr,
        /// The argument names the template uses, each once, in order of first use.
        names: Vec<String>,
    },
    /// `key_builder = EXPR`: a closure or function called with the unskipped arguments.
    Builder(Box<Expr>),
}

/// How the runtime treats the return value; names the `__private` function that is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Cache every value.
    Value,
    /// Cache `Ok` values only.
    Result,
    /// Cache `Some` values only.
    Option,
}

impl Mode {
    pub(crate) fn function_name(self) -> &'static str {
        match self {
            Mode::Value => "value",
            Mode::Result => "result",
            Mode::Option => "option",
        }
    }
}

impl Parse for CacheArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = CacheArgs::default();
        let mut seen: Vec<String> = Vec::new();
        while !input.is_empty() {
            if !input.peek(Ident::peek_any) {
                return Err(input.error("expected a `cache` argument, like `expire = 60`"));
            }
            let name = Ident::parse_any(input)?;
            let name_str = name.to_string();
            if !ARGUMENTS.contains(&name_str.as_str()) {
                return Err(unknown_argument(&name));
            }
            if seen.contains(&name_str) {
                return Err(syn::Error::new(
                    name.span(),
                    format!("duplicate `cache` argument `{name_str}`"),
                ));
            }
            if (name_str == "key" && seen.iter().any(|s| s == "key_builder"))
                || (name_str == "key_builder" && seen.iter().any(|s| s == "key"))
            {
                return Err(syn::Error::new(
                    name.span(),
                    "`key` and `key_builder` cannot be used together",
                ));
            }
            seen.push(name_str.clone());
            if name_str == "skip" && input.peek(token::Paren) {
                return Err(input.error("`skip` takes a list in brackets, like `skip = [a, b]`"));
            }
            if !input.peek(Token![=]) {
                return Err(input.error(format!("expected `=` after `{name_str}`")));
            }
            input.parse::<Token![=]>()?;

            match name_str.as_str() {
                "expire" => args.expire = Some(parse_expire(&input.parse()?)?),
                "namespace" => args.namespace = Some(parse_namespace(&input.parse()?)?),
                "key" => args.key = Some(parse_key(&input.parse()?)?),
                "key_builder" => args.key = Some(Key::Builder(Box::new(input.parse()?))),
                "skip" => args.skip = parse_skip(input)?,
                "returns" => args.returns = Some(parse_returns(&input.parse()?)?),
                "lock" => args.lock = parse_bool(&input.parse()?, "lock")?,
                "jitter" => args.jitter = Some(parse_jitter(&input.parse()?)?),
                "refresh" => args.refresh = Some(parse_seconds(&input.parse()?, "refresh")?),
                "stale_if_error" => {
                    args.stale_if_error = Some(parse_seconds(&input.parse()?, "stale_if_error")?)
                }
                "cache" => args.cache = Some(Box::new(input.parse()?)),
                _ => return Err(unknown_argument(&name)),
            }

            if input.is_empty() {
                break;
            }
            if !input.peek(Token![,]) {
                return Err(input.error("expected `,` between `cache` arguments"));
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

fn unknown_argument(name: &Ident) -> syn::Error {
    syn::Error::new(
        name.span(),
        format!(
            "unknown `cache` argument `{name}`; expected one of `expire`, `namespace`, `key`, \
             `key_builder`, `skip`, `returns`, `lock`, `jitter`, `refresh`, `stale_if_error`, \
             `cache`"
        ),
    )
}

fn parse_expire(value: &Expr) -> syn::Result<u64> {
    parse_seconds(value, "expire")
}

fn parse_bool(value: &Expr, argument: &str) -> syn::Result<bool> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(b.value),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("`{argument}` must be `true` or `false`"),
        )),
    }
}

fn parse_jitter(value: &Expr) -> syn::Result<f64> {
    const RANGE: &str =
        "`jitter` must be a fraction of the TTL above 0 and below 1, like `jitter = 0.1`";
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => match f.base10_parse::<f64>() {
            Ok(x) if x > 0.0 && x < 1.0 => Ok(x),
            _ => Err(syn::Error::new(f.span(), RANGE)),
        },
        _ => Err(syn::Error::new_spanned(value, RANGE)),
    }
}

fn parse_seconds(value: &Expr, argument: &str) -> syn::Result<u64> {
    let not_whole =
        format!("`{argument}` must be a whole number of seconds, like `{argument} = 60`");
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => {
            let seconds = int.base10_parse::<u64>().map_err(|_| {
                syn::Error::new(
                    int.span(),
                    format!("`{argument}` is too large; it must fit in a `u64` number of seconds"),
                )
            })?;
            if seconds == 0 {
                return Err(syn::Error::new(
                    int.span(),
                    format!("`{argument}` must be at least 1 second"),
                ));
            }
            Ok(seconds)
        }
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) if matches!(
            &**expr,
            Expr::Lit(ExprLit {
                lit: Lit::Int(_),
                ..
            })
        ) =>
        {
            Err(syn::Error::new_spanned(
                value,
                format!("`{argument}` must be at least 1 second"),
            ))
        }
        _ => Err(syn::Error::new_spanned(value, not_whole)),
    }
}

pub(crate) fn string_literal(value: &Expr, argument: &str, example: &str) -> syn::Result<LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Ok(lit.clone()),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("`{argument}` must be a string literal, like `{argument} = {example}`"),
        )),
    }
}

pub(crate) fn parse_namespace(value: &Expr) -> syn::Result<String> {
    let lit = string_literal(value, "namespace", "\"catalog\"")?;
    let namespace = lit.value();
    if namespace.is_empty() {
        return Err(syn::Error::new(
            lit.span(),
            "the namespace may not be empty; omit `namespace` instead",
        ));
    }
    if namespace.contains(':') {
        return Err(syn::Error::new(
            lit.span(),
            "a namespace may not contain `:`, which separates the parts of a cache key",
        ));
    }
    Ok(namespace)
}

fn parse_returns(value: &Expr) -> syn::Result<Mode> {
    const EXPECTED: &str = "`returns` must be \"value\", \"result\" or \"option\"";
    let lit = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => lit,
        _ => return Err(syn::Error::new_spanned(value, EXPECTED)),
    };
    match lit.value().as_str() {
        "value" => Ok(Mode::Value),
        "result" => Ok(Mode::Result),
        "option" => Ok(Mode::Option),
        _ => Err(syn::Error::new(lit.span(), EXPECTED)),
    }
}

fn parse_skip(input: ParseStream<'_>) -> syn::Result<Vec<Ident>> {
    if !input.peek(token::Bracket) {
        return Err(input.error("`skip` takes a list in brackets, like `skip = [a, b]`"));
    }
    let content;
    syn::bracketed!(content in input);
    let names = Punctuated::<Ident, Token![,]>::parse_terminated_with(&content, Ident::parse_any)?;
    let mut skip: Vec<Ident> = Vec::new();
    for name in names {
        if skip.iter().any(|seen| seen.unraw() == name.unraw()) {
            return Err(syn::Error::new(
                name.span(),
                format!("`{}` is listed in `skip` more than once", name.unraw()),
            ));
        }
        skip.push(name);
    }
    Ok(skip)
}

fn parse_key(value: &Expr) -> syn::Result<Key> {
    let lit = string_literal(value, "key", "\"user:{id}\"")?;
    let names =
        placeholders(&lit.value()).map_err(|message| syn::Error::new(lit.span(), message))?;
    Ok(Key::Template { lit, names })
}

/// The argument names a `format!`-style template refers to, each once, in order of first use:
/// `{name}`, `{name:spec}`, and `name$` inside a spec (`{x:>width$}`). `{{` and `}}` are
/// literal braces. The compiler's `format_args!` checks the rest of the syntax.
pub(crate) fn placeholders(template: &str) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    let mut push = |name: &str| -> Result<(), String> {
        check_placeholder_name(name)?;
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
        Ok(())
    };
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
            }
            '{' => {
                let mut inner = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some('{') | None => {
                            return Err(
                                "`key` has an unclosed `{`; write `{{` for a literal brace".into()
                            )
                        }
                        Some(c) => inner.push(c),
                    }
                }
                let (name, spec) = match inner.split_once(':') {
                    Some((name, spec)) => (name, spec),
                    None => (inner.as_str(), ""),
                };
                push(name)?;
                for name in spec_references(spec)? {
                    push(name)?;
                }
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
            }
            '}' => {
                return Err("`key` has an unmatched `}`; write `}}` for a literal brace".into());
            }
            _ => {}
        }
    }
    Ok(names)
}

const POSITIONAL: &str =
    "`key` placeholders must name an argument, like `{id}`; `{}`, `{0}` and `.*` are not supported";

/// `template` with each `{arg.field}` placeholder renamed `{__cache_f0}`, `{__cache_f1}`, ...
/// (`format_args!` takes names, not paths), and the paths in that order. The template has
/// been checked by [`placeholders`].
pub(crate) fn rename_paths(template: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(template.len());
    let mut paths: Vec<String> = Vec::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        match c {
            '{' if chars.peek() == Some(&'{') => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            '{' => {
                let mut name = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ':' || c == '}' {
                        break;
                    }
                    name.push(c);
                    chars.next();
                }
                if name.contains('.') {
                    let index = match paths.iter().position(|p| *p == name) {
                        Some(index) => index,
                        None => {
                            paths.push(name);
                            paths.len() - 1
                        }
                    };
                    out.push_str(&format!("__cache_f{index}"));
                } else {
                    out.push_str(&name);
                }
            }
            _ => {}
        }
    }
    (out, paths)
}

/// The `name$` width and precision references of a format spec such as `>width$.prec$`.
fn spec_references(spec: &str) -> Result<Vec<&str>, String> {
    if spec.contains(".*") {
        return Err(POSITIONAL.into());
    }
    let mut references = Vec::new();
    for (dollar, _) in spec.match_indices('$') {
        let before = &spec[..dollar];
        let name_len: usize = before
            .chars()
            .rev()
            .take_while(|&c| c.is_alphanumeric() || c == '_')
            .map(char::len_utf8)
            .sum();
        let name = &before[before.len() - name_len..];
        // An empty name is a `$` fill character, as in `{x:$>8}`.
        if !name.is_empty() {
            references.push(name);
        }
    }
    Ok(references)
}

fn check_placeholder_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().all(|c| c.is_ascii_digit()) {
        return Err(POSITIONAL.into());
    }
    if name == "self" || name.starts_with("self.") {
        return Err(
            "`key` cannot refer to `{self}`; use `key_builder` to build a key from `self`".into(),
        );
    }
    // `{auth.user_id}`: a field of an argument (the fields may be tuple indexes).
    let mut segments = name.split('.');
    let root = segments.next().unwrap_or_default();
    let fields_ok = segments
        .all(|field| !field.is_empty() && field.chars().all(|c| c.is_alphanumeric() || c == '_'));
    let mut chars = root.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_alphanumeric() || c == '_') || !fields_ok {
        return Err(format!(
            "`key` placeholder `{{{name}}}` is not an argument name; placeholders look like \
             `{{id}}` or `{{id:>8}}`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::ToTokens as _;

    fn parse(input: &str) -> CacheArgs {
        match syn::parse_str::<CacheArgs>(input) {
            Ok(args) => args,
            Err(error) => panic!("`{input}` did not parse: {error}"),
        }
    }

    fn error(input: &str) -> String {
        match syn::parse_str::<CacheArgs>(input) {
            Ok(_) => panic!("`{input}` parsed, but should not"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn empty_means_defaults() {
        let args = parse("");
        assert_eq!(args.expire, None);
        assert_eq!(args.namespace, None);
        assert!(args.key.is_none());
        assert!(args.skip.is_empty());
        assert_eq!(args.returns, None);
    }

    #[test]
    fn every_argument() {
        let args = parse(
            r#"expire = 300, namespace = "catalog", key = "p:{id}:{page:03}", skip = [self, db],
               returns = "option","#,
        );
        assert_eq!(args.expire, Some(300));
        assert_eq!(args.namespace.as_deref(), Some("catalog"));
        match args.key {
            Some(Key::Template { lit, names }) => {
                assert_eq!(lit.value(), "p:{id}:{page:03}");
                assert_eq!(names, ["id", "page"]);
            }
            _ => panic!("expected a key template"),
        }
        let skip: Vec<String> = args.skip.iter().map(ToString::to_string).collect();
        assert_eq!(skip, ["self", "db"]);
        assert_eq!(args.returns, Some(Mode::Option));
    }

    #[test]
    fn expire_forms() {
        assert_eq!(parse("expire = 1").expire, Some(1));
        assert_eq!(parse("expire = 86_400").expire, Some(86_400));
        assert_eq!(parse("expire = 60u64").expire, Some(60));
        assert_eq!(
            parse("expire = 18446744073709551615").expire,
            Some(u64::MAX)
        );
    }

    #[test]
    fn returns_forms() {
        assert_eq!(parse(r#"returns = "value""#).returns, Some(Mode::Value));
        assert_eq!(parse(r#"returns = "result""#).returns, Some(Mode::Result));
        assert_eq!(parse(r#"returns = "option""#).returns, Some(Mode::Option));
    }

    #[test]
    fn key_builder_closure_then_more_arguments() {
        let args = parse(
            r#"key_builder = |user: &String, page: &u32| format!("{user}:{page}"), expire = 5"#,
        );
        match args.key {
            Some(Key::Builder(expr)) => {
                assert!(matches!(*expr, Expr::Closure(_)));
                assert_eq!(
                    expr.to_token_stream().to_string(),
                    r#"| user : & String , page : & u32 | format ! ("{user}:{page}")"#
                );
            }
            _ => panic!("expected a key builder"),
        }
        assert_eq!(args.expire, Some(5));
    }

    #[test]
    fn key_builder_path() {
        match parse("key_builder = crate::keys::page").key {
            Some(Key::Builder(expr)) => assert!(matches!(*expr, Expr::Path(_))),
            _ => panic!("expected a key builder"),
        }
    }

    #[test]
    fn expire_errors() {
        let not_whole = "`expire` must be a whole number of seconds, like `expire = 60`";
        assert_eq!(error(r#"expire = "60""#), not_whole);
        assert_eq!(error("expire = 1.5"), not_whole);
        assert_eq!(error("expire = x"), not_whole);
        assert_eq!(error("expire = 0"), "`expire` must be at least 1 second");
        assert_eq!(error("expire = -5"), "`expire` must be at least 1 second");
        assert_eq!(
            error("expire = 18446744073709551616"),
            "`expire` is too large; it must fit in a `u64` number of seconds"
        );
    }

    #[test]
    fn namespace_errors() {
        assert_eq!(
            error(r#"namespace = "a:b""#),
            "a namespace may not contain `:`, which separates the parts of a cache key"
        );
        assert_eq!(
            error(r#"namespace = """#),
            "the namespace may not be empty; omit `namespace` instead"
        );
        assert_eq!(
            error("namespace = catalog"),
            "`namespace` must be a string literal, like `namespace = \"catalog\"`"
        );
    }

    #[test]
    fn resilience_options() {
        let args = parse("lock = true, jitter = 0.25, refresh = 10, stale_if_error = 300");
        assert!(args.lock);
        assert_eq!(args.jitter, Some(0.25));
        assert_eq!(args.refresh, Some(10));
        assert_eq!(args.stale_if_error, Some(300));
        assert!(!parse("lock = false").lock);
        assert_eq!(error("lock = 1"), "`lock` must be `true` or `false`");
        for bad in [
            "jitter = 1.5",
            "jitter = 0.0",
            "jitter = 1",
            "jitter = \"0.1\"",
        ] {
            assert_eq!(
                error(bad),
                "`jitter` must be a fraction of the TTL above 0 and below 1, like `jitter = 0.1`",
                "{bad}"
            );
        }
        assert_eq!(error("refresh = 0"), "`refresh` must be at least 1 second");
        assert_eq!(
            error("stale_if_error = x"),
            "`stale_if_error` must be a whole number of seconds, like `stale_if_error = 60`"
        );
    }

    #[test]
    fn argument_errors() {
        assert_eq!(
            error("ttl = 5"),
            "unknown `cache` argument `ttl`; expected one of `expire`, `namespace`, `key`, \
             `key_builder`, `skip`, `returns`, `lock`, `jitter`, `refresh`, `stale_if_error`, \
             `cache`"
        );
        assert_eq!(
            error("expire = 5, expire = 6"),
            "duplicate `cache` argument `expire`"
        );
        assert_eq!(
            error(r#"key = "a", key_builder = f"#),
            "`key` and `key_builder` cannot be used together"
        );
        assert_eq!(
            error(r#"key_builder = f, key = "a""#),
            "`key` and `key_builder` cannot be used together"
        );
        assert_eq!(
            error("60"),
            "expected a `cache` argument, like `expire = 60`"
        );
        assert_eq!(error("expire 60"), "expected `=` after `expire`");
        assert_eq!(
            error("expire = 60 namespace = \"a\""),
            "expected `,` between `cache` arguments"
        );
    }

    #[test]
    fn returns_errors() {
        let expected = "`returns` must be \"value\", \"result\" or \"option\"";
        assert_eq!(error(r#"returns = "vec""#), expected);
        assert_eq!(error("returns = result"), expected);
    }

    #[test]
    fn skip_errors() {
        let brackets = "`skip` takes a list in brackets, like `skip = [a, b]`";
        assert_eq!(error("skip(a, b)"), brackets);
        assert_eq!(error("skip = a"), brackets);
        assert_eq!(
            error("skip = [a, b, a]"),
            "`a` is listed in `skip` more than once"
        );
        assert!(parse("skip = []").skip.is_empty());
    }

    #[test]
    fn key_errors() {
        assert_eq!(
            error("key = 5"),
            "`key` must be a string literal, like `key = \"user:{id}\"`"
        );
        assert_eq!(
            error(r#"key = "{self}""#),
            "`key` cannot refer to `{self}`; use `key_builder` to build a key from `self`"
        );
        assert_eq!(
            error(r#"key = "{a""#),
            "`key` has an unclosed `{`; write `{{` for a literal brace"
        );
        assert_eq!(
            error(r#"key = "a}""#),
            "`key` has an unmatched `}`; write `}}` for a literal brace"
        );
    }

    #[test]
    fn placeholder_names() {
        assert_eq!(placeholders("plain").unwrap(), Vec::<String>::new());
        assert_eq!(placeholders("{{id}}").unwrap(), Vec::<String>::new());
        assert_eq!(placeholders("{{{id}}}").unwrap(), ["id"]);
        assert_eq!(placeholders("{a}-{b:?}-{a}").unwrap(), ["a", "b"]);
        assert_eq!(
            placeholders("{x:>width$.prec$}").unwrap(),
            ["x", "width", "prec"]
        );
        assert_eq!(placeholders("{x:$>8}").unwrap(), ["x"]);
        assert_eq!(placeholders("{_id}{été}").unwrap(), ["_id", "été"]);
        assert_eq!(
            placeholders("u:{auth.user_id}:{p.0:>3}").unwrap(),
            ["auth.user_id", "p.0"]
        );
        assert!(placeholders("{auth.}").is_err());
        assert!(placeholders("{self.id}").is_err());
        assert_eq!(
            rename_paths("u:{auth.user_id}:{{x}}:{p.0:>3}:{auth.user_id}:{id}"),
            (
                "u:{__cache_f0}:{{x}}:{__cache_f1:>3}:{__cache_f0}:{id}".to_owned(),
                vec!["auth.user_id".to_owned(), "p.0".to_owned()]
            )
        );
        let positional =
            "`key` placeholders must name an argument, like `{id}`; `{}`, `{0}` and `.*` are not \
             supported";
        assert_eq!(placeholders("{}").unwrap_err(), positional);
        assert_eq!(placeholders("{0}").unwrap_err(), positional);
        assert_eq!(placeholders("{:?}").unwrap_err(), positional);
        assert_eq!(placeholders("{x:.*}").unwrap_err(), positional);
        assert_eq!(placeholders("{x:1$}").unwrap_err(), positional);
        assert_eq!(
            placeholders("{a b}").unwrap_err(),
            "`key` placeholder `{a b}` is not an argument name; placeholders look like `{id}` \
             or `{id:>8}`"
        );
        assert_eq!(
            placeholders("{1a}").unwrap_err(),
            "`key` placeholder `{1a}` is not an argument name; placeholders look like `{id}` \
             or `{id:>8}`"
        );
    }
}
