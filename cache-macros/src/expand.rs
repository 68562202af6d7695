//! The code `#[cache]` emits: the original signature around a short call into
//! `::cache_runtime::__private`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned as _;
use syn::visit::Visit;
use syn::{
    token, Abi, Attribute, Expr, FnArg, Ident, LitInt, LitStr, Pat, PatIdent, PathArguments,
    ReturnType, Signature, Token, Type, TypeImplTrait, Visibility,
};

use crate::attr::{CacheArgs, Key, Mode, DEFAULT_EXPIRE};
use crate::types::strip;
use crate::web;

pub(crate) const NOT_ASYNC_FN: &str = "`#[cache]` can only be applied to an `async fn`";

/// The whole attribute: `attr` is what is inside `#[cache(...)]`, `item` the function.
///
/// On any error the result is the error as `compile_error!` followed by the unchanged item, so
/// that code using the function does not report errors of its own.
pub(crate) fn cache(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr, item.clone()) {
        Ok(tokens) => tokens,
        Err(error) => {
            let mut tokens = error.to_compile_error();
            tokens.extend(item);
            tokens
        }
    }
}

/// The expansion, or every error found.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = syn::parse2::<CacheArgs>(attr)?;
    let function = syn::parse2::<CachedFn>(item)?;
    gen_function(args, function)
}

/// A function whose body is kept as tokens: the body is moved, never inspected, so a syntax
/// error in it is reported once, by the compiler, at its place.
pub(crate) struct CachedFn {
    pub(crate) outer_attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    pub(crate) brace: token::Brace,
    pub(crate) inner_attrs: Vec<Attribute>,
    pub(crate) body: TokenStream,
}

impl Parse for CachedFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let outer_attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        if !starts_fn(input) {
            return Err(input.error(NOT_ASYNC_FN));
        }
        let sig: Signature = input.parse()?;
        if !input.peek(token::Brace) {
            return Err(syn::Error::new(
                sig.fn_token.span,
                "`#[cache]` needs a function body; it cannot be applied to a declaration \
                 without one",
            ));
        }
        let content;
        let brace = syn::braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let body: TokenStream = content.parse()?;
        Ok(CachedFn {
            outer_attrs,
            vis,
            sig,
            brace,
            inner_attrs,
            body,
        })
    }
}

/// Whether the input, after attributes and visibility, is a function signature.
fn starts_fn(input: ParseStream<'_>) -> bool {
    let fork = input.fork();
    fork.parse::<Option<Token![const]>>().is_ok()
        && fork.parse::<Option<Token![async]>>().is_ok()
        && fork.parse::<Option<Token![unsafe]>>().is_ok()
        && fork.parse::<Option<Abi>>().is_ok()
        && fork.peek(Token![fn])
}

/// One name the function binds: an argument, `self`, or a name bound by an argument pattern.
/// Each unit is hashed into the key unless skipped.
pub(crate) struct Unit {
    pub(crate) name: Ident,
    /// The expression given to `__private::arg` (or `hash_fn`) when hashing.
    hash: TokenStream,
    /// The `__private` function that hashes it: `arg`, `arg_self`, or `arg_option` /
    /// `arg_vec` / `arg_boxed`, whose errors name the type inside the wrapper.
    hash_fn: &'static str,
    /// The expression given to `key_builder`.
    pass: TokenStream,
    /// Left out of the key without being named in `skip` (axum's `State<_>`).
    auto_skipped: bool,
    /// An argument of type `Option<_>`: `{arg.field}` in a key reads through it.
    optional: bool,
}

impl Unit {
    pub(crate) fn is(&self, name: &str) -> bool {
        self.name.unraw() == name
    }
}

pub(crate) fn units(sig: &Signature) -> syn::Result<Vec<Unit>> {
    let mut units = Vec::new();
    for input in &sig.inputs {
        let extractor = match input {
            FnArg::Typed(typed) if cfg!(feature = "axum") => web::extractor(&typed.ty),
            _ => None,
        };
        let auto_skipped = matches!(extractor, Some(web::Extractor::State));
        match input {
            FnArg::Receiver(receiver) => {
                let name = Ident::from(receiver.self_token);
                let span = name.span();
                let by_ref = match strip(&receiver.ty) {
                    Type::Reference(reference) => Some(reference.mutability.is_some()),
                    _ => None,
                };
                // Hashed through a reference so that `Self` need not be `Sized`.
                let hash = quote_spanned!(span=> &#name);
                let pass = match by_ref {
                    Some(false) => quote!(#name),
                    Some(true) => quote_spanned!(span=> &*#name),
                    None => quote_spanned!(span=> &#name),
                };
                units.push(Unit {
                    name,
                    hash,
                    hash_fn: "arg_self",
                    pass,
                    auto_skipped: false,
                    optional: false,
                });
            }
            FnArg::Typed(typed) => match &*typed.pat {
                Pat::Ident(PatIdent {
                    by_ref: None,
                    subpat: None,
                    ident,
                    ..
                }) => {
                    let span = ident.span();
                    let pass = match strip(&typed.ty) {
                        Type::Reference(reference) if reference.mutability.is_some() => {
                            quote_spanned!(span=> &*#ident)
                        }
                        Type::Reference(_) => quote!(#ident),
                        _ => quote_spanned!(span=> &#ident),
                    };
                    let (hash_fn, hash) = match extractor {
                        Some(web::Extractor::Wrapper) => ("arg", web::inner_of(ident)),
                        _ => wrapped(&typed.ty, ident),
                    };
                    units.push(Unit {
                        name: ident.clone(),
                        hash,
                        hash_fn,
                        pass,
                        auto_skipped,
                        optional: detect_mode(&ReturnType::Type(
                            Default::default(),
                            typed.ty.clone(),
                        )) == Mode::Option,
                    });
                }
                pat => {
                    let mut bindings = Bindings::default();
                    bindings.visit_pat(pat);
                    if let Some(span) = bindings.opaque {
                        return Err(syn::Error::new(
                            span,
                            "`#[cache]` cannot see the names this pattern binds; bind the \
                             argument to a name instead",
                        ));
                    }
                    for ident in bindings.idents {
                        let span = ident.span();
                        units.push(Unit {
                            hash: quote_spanned!(span=> &#ident),
                            hash_fn: "arg",
                            pass: quote_spanned!(span=> &#ident),
                            name: ident,
                            auto_skipped,
                            optional: false,
                        });
                    }
                }
            },
        }
    }
    Ok(units)
}

/// How an argument `ident` of type `ty` is hashed: through `arg_option`, `arg_vec` or
/// `arg_boxed` when its type is (a reference to) one of those wrappers, so that a missing
/// `Serialize` is reported on the type inside with the crate's hint; else through `arg`.
fn wrapped(ty: &Type, ident: &Ident) -> (&'static str, TokenStream) {
    let span = ident.span();
    let (inner, reference) = match strip(ty) {
        Type::Reference(reference) => {
            (strip(&reference.elem), Some(reference.mutability.is_some()))
        }
        other => (other, None),
    };
    let wrapper = match inner {
        Type::Path(path) if path.qself.is_none() => path.path.segments.last().and_then(|last| {
            let one_type = matches!(
                &last.arguments,
                PathArguments::AngleBracketed(args) if args.args.len() == 1
            );
            match last.ident.to_string().as_str() {
                "Option" if one_type => Some("arg_option"),
                "Vec" if one_type => Some("arg_vec"),
                "Box" if one_type => Some("arg_boxed"),
                _ => None,
            }
        }),
        _ => None,
    };
    match (wrapper, reference) {
        // A reference is hashed as what it points to (the same JSON), so an error names `Db`,
        // not `&Db`.
        (None, None) => ("arg", quote_spanned!(span=> &#ident)),
        (None, Some(false)) => ("arg", quote_spanned!(span=> #ident)),
        (None, Some(true)) => ("arg", quote_spanned!(span=> &*#ident)),
        (Some(hash_fn), None) => (hash_fn, quote_spanned!(span=> &#ident)),
        (Some(hash_fn), Some(false)) => (hash_fn, quote_spanned!(span=> #ident)),
        (Some(hash_fn), Some(true)) => (hash_fn, quote_spanned!(span=> &*#ident)),
    }
}

/// The names a pattern binds, in order.
#[derive(Default)]
struct Bindings {
    idents: Vec<Ident>,
    /// Set when the pattern is a macro call, whose bindings are invisible here.
    opaque: Option<Span>,
}

impl<'ast> Visit<'ast> for Bindings {
    fn visit_pat_ident(&mut self, pat: &'ast PatIdent) {
        self.idents.push(pat.ident.clone());
        syn::visit::visit_pat_ident(self, pat);
    }

    fn visit_pat(&mut self, pat: &'ast Pat) {
        match pat {
            Pat::Macro(_) | Pat::Verbatim(_) => {
                self.opaque.get_or_insert(pat.span());
            }
            _ => syn::visit::visit_pat(self, pat),
        }
    }
}

/// Finds the first `impl Trait` in a type.
#[derive(Default)]
struct ImplTrait<'ast>(Option<&'ast TypeImplTrait>);

impl<'ast> Visit<'ast> for ImplTrait<'ast> {
    fn visit_type_impl_trait(&mut self, ty: &'ast TypeImplTrait) {
        self.0.get_or_insert(ty);
    }
}

/// `Result<..>` (any path ending so, such as `io::Result<T>`) caches `Ok` values, `Option<..>`
/// caches `Some` values, anything else is a plain value.
pub(crate) fn detect_mode(output: &ReturnType) -> Mode {
    let ReturnType::Type(_, ty) = output else {
        return Mode::Value;
    };
    let Type::Path(path) = strip(ty) else {
        return Mode::Value;
    };
    let Some(last) = path.path.segments.last() else {
        return Mode::Value;
    };
    let generic = matches!(last.arguments, PathArguments::AngleBracketed(_));
    match last.ident.to_string().as_str() {
        "Result" if generic => Mode::Result,
        "Option" if generic => Mode::Option,
        _ => Mode::Value,
    }
}

/// The first type argument of a path type (`T` of `Result<T, E>`, `io::Result<T>`,
/// `Option<T>`), which is what `returns = "result"` and `"option"` store.
fn first_type_argument(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = strip(ty) else {
        return None;
    };
    let PathArguments::AngleBracketed(args) = &path.path.segments.last()?.arguments else {
        return None;
    };
    args.args.iter().find_map(|arg| match arg {
        syn::GenericArgument::Type(ty) => Some(ty),
        _ => None,
    })
}

/// The types a stored value of type `ty` is made of, for the error of one that cannot be
/// stored: seen through (by the last segment of their paths, like `Result`) `Option`, `Vec`,
/// `VecDeque`, `Box`, `Arc`, `Rc`, sets, maps (keys and values), `Result` (both sides),
/// tuples, arrays and slices, whose serde implementations need the same of what they hold.
/// Anything else is a part itself. An error names the part that cannot be stored; a wrong
/// guess costs nothing, since the parts are checked only when the whole cannot be stored.
fn stored_parts<'a>(ty: &'a Type, parts: &mut Vec<&'a Type>) {
    match strip(ty) {
        Type::Tuple(tuple) if !tuple.elems.is_empty() => {
            for elem in &tuple.elems {
                stored_parts(elem, parts);
            }
        }
        Type::Array(array) => stored_parts(&array.elem, parts),
        Type::Slice(slice) => stored_parts(&slice.elem, parts),
        Type::Path(path) if path.qself.is_none() => {
            let Some(last) = path.path.segments.last() else {
                return parts.push(ty);
            };
            let args: Vec<&Type> = match &last.arguments {
                PathArguments::AngleBracketed(args) => args
                    .args
                    .iter()
                    .filter_map(|arg| match arg {
                        syn::GenericArgument::Type(ty) => Some(ty),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let inside: &[&Type] = match (last.ident.to_string().as_str(), args.as_slice()) {
                ("Box" | "Arc" | "Rc", [inner]) if unsized_type(inner) => &[],
                ("Option" | "Vec" | "VecDeque" | "LinkedList" | "Box" | "Arc" | "Rc", [inner]) => {
                    std::slice::from_ref(inner)
                }
                ("HashSet" | "BTreeSet", [inner, ..]) => std::slice::from_ref(inner),
                ("HashMap" | "BTreeMap", [key, value, ..]) => &[*key, *value],
                ("Result", [ok, err]) => &[*ok, *err],
                _ => &[],
            };
            if inside.is_empty() {
                parts.push(ty);
            }
            for inner in inside {
                stored_parts(inner, parts);
            }
        }
        _ => parts.push(ty),
    }
}

/// Whether `ty` is a type without a size that serde stores behind a pointer (`Box<str>`):
/// such a pointer is a part itself.
fn unsized_type(ty: &Type) -> bool {
    match strip(ty) {
        Type::Slice(_) => false,
        Type::TraitObject(_) => true,
        Type::Path(path) => path.path.segments.last().is_some_and(|last| {
            matches!(
                last.ident.to_string().as_str(),
                "str" | "Path" | "OsStr" | "CStr"
            )
        }),
        _ => false,
    }
}

/// The `format_args!` of a key template: the template with `{arg.field}` paths renamed, and
/// the named arguments (`id = id`, `__cache_f0 = &auth.user_id`, through an `Option` argument
/// `__cache_f0 = OrNone(auth.as_ref().map(..))`). Placeholders that name no argument, or a
/// skipped one, are errors.
pub(crate) fn template_args(
    lit: &LitStr,
    template: &str,
    names: &[String],
    units: &[Unit],
    skipped: &dyn Fn(&Unit) -> bool,
    errors: &mut Errors,
) -> (LitStr, Vec<TokenStream>) {
    let (renamed, paths) = crate::attr::rename_paths(template);
    let mut named = Vec::new();
    for name in names {
        let mut segments = name.split('.');
        let root = segments.next().unwrap_or_default();
        match units.iter().find(|unit| unit.is(root)) {
            None => errors.push(
                lit.span(),
                format!("`key` refers to `{{{name}}}`, but this function has no argument `{root}`"),
            ),
            Some(unit) if skipped(unit) => errors.push(
                lit.span(),
                format!("`key` refers to `{{{name}}}`, but `{root}` is listed in `skip`"),
            ),
            Some(unit) => {
                let value = &unit.name;
                let Some(index) = paths.iter().position(|path| path == name) else {
                    let label = format_ident!("{}", name, span = lit.span());
                    named.push(quote!(#label = #value));
                    continue;
                };
                let label = format_ident!("__cache_f{}", index, span = lit.span());
                let fields: Vec<syn::Member> = segments
                    .filter_map(|field| syn::parse_str::<syn::Member>(field).ok())
                    .collect();
                let value = if unit.optional {
                    quote!(::cache_runtime::__private::OrNone(
                        #value.as_ref().map(|__cache_v| &__cache_v #(.#fields)*)
                    ))
                } else {
                    quote!(&#value #(.#fields)*)
                };
                named.push(quote!(#label = #value));
            }
        }
    }
    (LitStr::new(&renamed, lit.span()), named)
}

/// As in tracing-attributes: a return of the declared type, never taken, fixes the type of
/// the async block so that `?` and `return` in the body infer as they did in the function.
pub(crate) fn fake_return(ret_ty: &TokenStream, ret_span: Span) -> TokenStream {
    quote_spanned! {ret_span=>
        #[allow(
            unknown_lints,
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::let_unit_value,
            clippy::unreachable,
            clippy::let_with_type_underscore,
            clippy::empty_loop,
            clippy::needless_return
        )]
        if false {
            let __cache_fake_return: #ret_ty = ::core::unreachable!();
            return __cache_fake_return;
        }
    }
}

/// Collects every error so that one compilation reports them all.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push_error(syn::Error::new(span, message));
    }

    pub(crate) fn push_error(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

fn gen_function(args: CacheArgs, function: CachedFn) -> syn::Result<TokenStream> {
    let CachedFn {
        outer_attrs,
        vis,
        sig,
        brace,
        inner_attrs,
        body,
    } = function;

    if sig.asyncness.is_none() {
        return Err(syn::Error::new(sig.fn_token.span, NOT_ASYNC_FN));
    }

    let units = units(&sig)?;
    let mut errors = Errors::default();

    for name in &args.skip {
        let name_str = name.unraw().to_string();
        if !units.iter().any(|unit| unit.is(&name_str)) {
            errors.push(
                name.span(),
                format!(
                    "`skip` names `{name_str}`, but this function has no argument `{name_str}`"
                ),
            );
        }
    }
    let skipped = |unit: &Unit| {
        unit.auto_skipped
            || args
                .skip
                .iter()
                .any(|name| unit.is(&name.unraw().to_string()))
    };
    let kept: Vec<&Unit> = units.iter().filter(|unit| !skipped(unit)).collect();

    let (ret_ty, ret_span) = match &sig.output {
        ReturnType::Type(_, ty) => {
            let mut impl_trait = ImplTrait::default();
            impl_trait.visit_type(ty);
            let response = cfg!(feature = "axum")
                .then(|| web::unstorable(ty))
                .flatten();
            if let Some(response) = response {
                errors.push_error(response);
            } else if let Some(impl_trait) = impl_trait.0 {
                errors.push_error(syn::Error::new_spanned(
                    impl_trait,
                    "`#[cache]` cannot store an `impl Trait` return value; name a concrete type",
                ));
            }
            (ty.to_token_stream(), ty.span())
        }
        ReturnType::Default => (quote!(()), sig.ident.span()),
    };
    let mode = args.returns.unwrap_or_else(|| detect_mode(&sig.output));
    // A web return type (`Json<T>`, `Result<Json<T>, E>`, ...) is stored by its inner value,
    // unless `returns` says otherwise.
    let web_shape = match &sig.output {
        ReturnType::Type(_, ty) if cfg!(feature = "axum") && args.returns.is_none() => {
            web::shape(ty)
        }
        _ => None,
    };

    // With `cache = EXPR`, the `_in` entry points take the cache first. The expression is
    // evaluated (and its borrow ends) before the body moves the arguments.
    let (suffix, cache) = match &args.cache {
        Some(expr) => ("_in", Some(quote_spanned!(expr.span()=> #expr,))),
        None => ("", None),
    };
    let entry = |name: &str| format_ident!("{}{}", name, suffix);
    let (hashed_fn, hashed_typed_fn, keyed_fn) =
        (entry("hashed"), entry("hashed_typed"), entry("keyed"));

    let ticket = match &args.key {
        None => {
            // A type named after each argument names it in the error of one that cannot be
            // hashed (`skip = [query]`). Braced, so that it adds nothing to the value
            // namespace, and declared in the ticket's block only.
            let markers: Vec<TokenStream> = kept
                .iter()
                .filter(|unit| unit.hash_fn != "arg_self")
                .map(|unit| {
                    let name = &unit.name;
                    quote!(#[allow(non_camel_case_types, dead_code)] struct #name {})
                })
                .collect();
            let hashed = kept.iter().map(|unit| {
                let hash = &unit.hash;
                let name = &unit.name;
                let hash_fn = Ident::new(unit.hash_fn, unit.name.span());
                match unit.hash_fn {
                    "arg_self" => quote_spanned!(unit.name.span()=>
                        ::cache_runtime::__private::arg_self(#hash)),
                    _ => quote_spanned!(unit.name.span()=>
                        ::cache_runtime::__private::#hash_fn::<#name, _>(#hash)),
                }
            });
            // The type of `Self` and the type arguments keep methods of different types and
            // instantiations of a generic function apart.
            let receiver = sig.receiver().map(|_| quote!(Self));
            let params = sig.generics.type_params().map(|param| &param.ident);
            let types: Vec<TokenStream> = receiver
                .into_iter()
                .chain(params.map(ToTokens::to_token_stream))
                .map(|ty| quote!(::core::any::type_name::<#ty>()))
                .collect();
            if types.is_empty() {
                quote! {
                    let __cache_ticket = {
                        #(#markers)*
                        ::cache_runtime::__private::#hashed_fn(
                            #cache
                            &__CACHE_SPEC,
                            &[ #(#hashed),* ],
                            __cache_reuse,
                        )
                    };
                }
            } else {
                quote! {
                    let __cache_ticket = {
                        #(#markers)*
                        ::cache_runtime::__private::#hashed_typed_fn(
                            #cache
                            &__CACHE_SPEC,
                            &[ #(#types),* ],
                            &[ #(#hashed),* ],
                        )
                    };
                }
            }
        }
        Some(Key::Template { lit, names }) => {
            let (lit, named) =
                template_args(lit, &lit.value(), names, &units, &skipped, &mut errors);
            quote! {
                let __cache_ticket = ::cache_runtime::__private::#keyed_fn(
                    #cache
                    &__CACHE_SPEC,
                    ::core::format_args!(#lit #(, #named)*)
                );
            }
        }
        Some(Key::Builder(builder)) => {
            let passed = kept.iter().map(|unit| &unit.pass);
            // A path is called as is; anything else is parenthesized, so that `a.b` is not
            // turned into a method call. A closure called in place needs clippy's leave.
            let (allow, call) = match &**builder {
                Expr::Path(_) => (None, quote!(#builder(#(#passed),*))),
                Expr::Closure(_) => (
                    Some(quote!(#[allow(clippy::redundant_closure_call)])),
                    quote!((#builder)(#(#passed),*)),
                ),
                _ => (None, quote!((#builder)(#(#passed),*))),
            };
            quote! {
                #allow
                let __cache_ticket =
                    ::cache_runtime::__private::#keyed_fn(#cache &__CACHE_SPEC, #call);
            }
        }
    };

    errors.finish()?;

    let function = sig.ident.unraw().to_string();
    let namespace = args.namespace.clone().unwrap_or_default();
    // Only what the attribute sets is spelled out; the runtime's defaults fill in the rest.
    let mut options = Vec::new();
    if args.lock {
        options.push(quote!(lock: true,));
    }
    if let Some(jitter) = args.jitter {
        options.push(quote!(jitter: #jitter,));
    }
    if let Some(refresh) = args.refresh {
        options.push(quote!(refresh: #refresh,));
    }
    if let Some(stale) = args.stale_if_error {
        options.push(quote!(stale_if_error: #stale,));
    }
    let expire = LitInt::new(
        &format!("{}u64", args.expire.unwrap_or(DEFAULT_EXPIRE)),
        Span::call_site(),
    );
    let mode_name = Ident::new(mode.function_name(), ret_span);

    let fake_return = fake_return(&ret_ty, ret_span);
    let mut block = TokenStream::new();
    brace.surround(&mut block, |tokens| tokens.extend(body));
    // The value type, what is stored: for the runtime to keep decoded copies of types that
    // can be cloned, and to pick the engine. Named without serde bounds (the shape's value
    // spelled out, `Returns` rather than `Outcome`), so that a value type that cannot be
    // stored is reported by the check below only. Spanned at the return type, so that what
    // is reported there is not reported at the attribute.
    let private = quote!(::cache_runtime::__private);
    let (value_ty, stored_ty) = match (&web_shape, mode) {
        (Some((_, value)), _) => (quote_spanned!(ret_span=> #value), Some(value.clone())),
        (None, Mode::Value) => (
            quote_spanned!(ret_span=> #ret_ty),
            match &sig.output {
                ReturnType::Type(_, ty) => Some((**ty).clone()),
                ReturnType::Default => None,
            },
        ),
        (None, Mode::Result | Mode::Option) => (
            quote_spanned!(ret_span=> <#ret_ty as #private::Returns>::Value),
            match &sig.output {
                ReturnType::Type(_, ty) => first_type_argument(ty).cloned(),
                ReturnType::Default => None,
            },
        ),
    };
    // The check of the value type: `Kind` names it and the types the macro finds inside it
    // (through `Option`, `Vec`, `Box`, tuples...), each checked at its own span, so that a
    // value type that cannot be stored gets one error, at the type that lacks serde's traits,
    // or at the whole value type when each part it is made of can be stored.
    let (parts, whole) = match &stored_ty {
        Some(ty) => {
            let mut parts = Vec::new();
            stored_parts(ty, &mut parts);
            let mut seen = Vec::new();
            parts.retain(|part| {
                let text = part.to_token_stream().to_string();
                let new = !seen.contains(&text);
                seen.push(text);
                new
            });
            let parts: Vec<TokenStream> =
                parts.into_iter().map(ToTokens::to_token_stream).collect();
            (parts, ty.to_token_stream())
        }
        None => (vec![value_ty.clone()], value_ty.clone()),
    };
    let list = parts.iter().rev().fold(
        quote!(#private::End),
        |rest, part| quote!(#private::Part<#part, #rest>),
    );
    let part_checks = parts
        .iter()
        .map(|part| quote_spanned!(part.span()=> __cache_kind.check_part::<#part>();));
    let stored = quote_spanned! {ret_span=>
        {
            #[allow(unused_imports)]
            use #private::{PickParts as _, PickStored as _, PickWhole as _};
            let __cache_kind = &&&#private::Kind::<#value_ty, #list>::NEW;
            #(#part_checks)*
            __cache_kind.check_whole::<#whole>();
            __cache_kind.pick()
        }
    };
    let mode = match &web_shape {
        Some((shape, _)) => quote_spanned!(ret_span=> shaped::<#shape, _, _>),
        None => quote!(#mode_name),
    };
    let reuse = quote_spanned! {ret_span=>
        {
            #[allow(unused_imports)]
            use #private::{ReuseByClone as _, ReuseNot as _};
            (&&#private::Reusable::<#value_ty>::NEW).reuse()
        }
    };
    let call = quote_spanned! {ret_span=>
        __cache_stored.#mode(__cache_ticket, __cache_reuse, move || async move {
            #fake_return
            #block
        })
        .await
    };

    let statements = quote! {
        #(#inner_attrs)*
        static __CACHE_SPEC: ::cache_runtime::__private::Spec =
            ::cache_runtime::__private::Spec {
                function: ::core::concat!(::core::module_path!(), "::", #function),
                namespace: #namespace,
                                expire: #expire,
                #(#options)*
                ..::cache_runtime::__private::Spec::DEFAULT
            };
        let __cache_reuse = #reuse;
        let __cache_stored = #stored;
        #ticket
        #call
    };
    Ok(quote! {
        #(#outer_attrs)*
        #vis #sig { #statements }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expanded(attr: TokenStream, item: TokenStream) -> String {
        match expand(attr, item) {
            Ok(tokens) => tokens.to_string(),
            Err(error) => panic!("expansion failed: {error}"),
        }
    }

    fn errors(attr: TokenStream, item: TokenStream) -> Vec<String> {
        match expand(attr, item) {
            Ok(tokens) => panic!("expansion succeeded: {tokens}"),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    /// The `#[allow]` on the fake return, as emitted.
    fn allow() -> TokenStream {
        quote! {
            #[allow(
                unknown_lints,
                unreachable_code,
                clippy::diverging_sub_expression,
                clippy::let_unit_value,
                clippy::unreachable,
                clippy::let_with_type_underscore,
                clippy::empty_loop,
                clippy::needless_return
            )]
        }
    }

    #[test]
    fn free_function() {
        let allow = allow();
        let expected = quote! {
            /// Adds.
            pub async fn add(a: u32, b: String) -> u64 {
                static __CACHE_SPEC: ::cache_runtime::__private::Spec =
                    ::cache_runtime::__private::Spec {
                        function: ::core::concat!(::core::module_path!(), "::", "add"),
                        namespace: "catalog",
                        expire: 300u64,
                        ..::cache_runtime::__private::Spec::DEFAULT
                    };
                let __cache_reuse = {
                    #[allow(unused_imports)]
                    use ::cache_runtime::__private::{ReuseByClone as _, ReuseNot as _};
                    (&&::cache_runtime::__private::Reusable::<u64>::NEW).reuse()
                };
                let __cache_stored = {
                    #[allow(unused_imports)]
                    use ::cache_runtime::__private::{PickParts as _, PickStored as _, PickWhole as _};
                    let __cache_kind = &&&::cache_runtime::__private::Kind::<
                        u64,
                        ::cache_runtime::__private::Part<u64, ::cache_runtime::__private::End>
                    >::NEW;
                    __cache_kind.check_part::<u64>();
                    __cache_kind.check_whole::<u64>();
                    __cache_kind.pick()
                };
                let __cache_ticket = {
                    #[allow(non_camel_case_types, dead_code)] struct a {}
                    #[allow(non_camel_case_types, dead_code)] struct b {}
                    ::cache_runtime::__private::hashed(
                        &__CACHE_SPEC,
                        &[
                            ::cache_runtime::__private::arg::<a, _>(&a),
                            ::cache_runtime::__private::arg::<b, _>(&b)
                        ],
                        __cache_reuse,
                    )
                };
                __cache_stored.value(__cache_ticket, __cache_reuse, move || async move {
                    #allow
                    if false {
                        let __cache_fake_return: u64 = ::core::unreachable!();
                        return __cache_fake_return;
                    }
                    { u64::from(a) + b.len() as u64 }
                })
                .await
            }
        };
        let actual = expanded(
            quote!(expire = 300, namespace = "catalog"),
            quote! {
                /// Adds.
                pub async fn add(a: u32, b: String) -> u64 { u64::from(a) + b.len() as u64 }
            },
        );
        assert_eq!(actual, expected.to_string());
    }

    #[test]
    fn defaults_and_no_arguments() {
        let allow = allow();
        let expected = quote! {
            async fn tick() {
                #![allow(unused)]
                static __CACHE_SPEC: ::cache_runtime::__private::Spec =
                    ::cache_runtime::__private::Spec {
                        function: ::core::concat!(::core::module_path!(), "::", "tick"),
                        namespace: "",
                        expire: 60u64,
                        ..::cache_runtime::__private::Spec::DEFAULT
                    };
                let __cache_reuse = {
                    #[allow(unused_imports)]
                    use ::cache_runtime::__private::{ReuseByClone as _, ReuseNot as _};
                    (&&::cache_runtime::__private::Reusable::<()>::NEW).reuse()
                };
                let __cache_stored = {
                    #[allow(unused_imports)]
                    use ::cache_runtime::__private::{PickParts as _, PickStored as _, PickWhole as _};
                    let __cache_kind = &&&::cache_runtime::__private::Kind::<
                        (),
                        ::cache_runtime::__private::Part<(), ::cache_runtime::__private::End>
                    >::NEW;
                    __cache_kind.check_part::<()>();
                    __cache_kind.check_whole::<()>();
                    __cache_kind.pick()
                };
                let __cache_ticket = {
                    ::cache_runtime::__private::hashed(&__CACHE_SPEC, &[], __cache_reuse,)
                };
                __cache_stored.value(__cache_ticket, __cache_reuse, move || async move {
                    #allow
                    if false {
                        let __cache_fake_return: () = ::core::unreachable!();
                        return __cache_fake_return;
                    }
                    { work().await; }
                })
                .await
            }
        };
        let actual = expanded(
            quote!(),
            quote!(
                async fn tick() {
                    #![allow(unused)]
                    work().await;
                }
            ),
        );
        assert_eq!(actual, expected.to_string());
    }

    #[test]
    fn key_template() {
        let actual = expanded(
            quote!(key = "user:{id}:{page:03}:{id}"),
            quote!(
                async fn page(id: u64, page: u32, db: &Db) -> Vec<u8> {
                    Default::default()
                }
            ),
        );
        let ticket = quote! {
            let __cache_ticket = ::cache_runtime::__private::keyed(
                &__CACHE_SPEC,
                ::core::format_args!("user:{id}:{page:03}:{id}", id = id, page = page)
            );
        };
        assert!(actual.contains(&ticket.to_string()), "{actual}");
    }

    #[test]
    fn key_builder_arguments() {
        let actual = expanded(
            quote!(key_builder = |db: &Db, id: &u64| format!("{id}")),
            quote!(
                async fn product(db: &Db, id: u64, m: &mut Vec<u8>, _: u8) -> u8 {
                    1
                }
            ),
        );
        let ticket = quote! {
            #[allow(clippy::redundant_closure_call)]
            let __cache_ticket = ::cache_runtime::__private::keyed(
                &__CACHE_SPEC,
                (|db: &Db, id: &u64| format!("{id}"))(db, &id, &*m)
            );
        };
        assert!(actual.contains(&ticket.to_string()), "{actual}");

        let actual = expanded(
            quote!(key_builder = |me: &Self, n: &str| format!("{n}")),
            quote!(
                async fn m(&mut self, n: &str) -> u8 {
                    1
                }
            ),
        );
        assert!(
            actual.contains(&quote!((&*self, n)).to_string()),
            "{actual}"
        );

        let actual = expanded(
            quote!(key_builder = keys::product, skip = [db]),
            quote!(
                async fn product(db: &Db, id: u64) -> u8 {
                    1
                }
            ),
        );
        let ticket = quote! {
            let __cache_ticket =
                ::cache_runtime::__private::keyed(&__CACHE_SPEC, keys::product(&id));
        };
        assert!(actual.contains(&ticket.to_string()), "{actual}");
    }

    /// The ticket statement of an expansion.
    fn ticket(item: TokenStream, attr: TokenStream) -> String {
        let actual = expanded(attr, item);
        let start = actual.find("let __cache_ticket").expect("a ticket");
        let rest = &actual[start..];
        let (end, len) = match (rest.find(") } ;"), rest.find(") ;")) {
            (Some(block), Some(call)) if block < call => (block, 5),
            (_, Some(call)) => (call, 3),
            (Some(block), None) => (block, 5),
            (None, None) => panic!("end of the ticket"),
        };
        rest[..end + len].to_owned()
    }

    #[test]
    fn a_named_cache_goes_first_to_the_in_entry_points() {
        let actual = ticket(
            quote!(
                async fn f(state: State, id: u64) -> u8 {
                    1
                }
            ),
            quote!(cache = &state.cache, skip = [state]),
        );
        let expected = quote! {
            let __cache_ticket = {
                #[allow(non_camel_case_types, dead_code)] struct id {}
                ::cache_runtime::__private::hashed_in(
                    &state.cache,
                    &__CACHE_SPEC,
                    &[::cache_runtime::__private::arg::<id, _>(&id)],
                    __cache_reuse,
                )
            };
        };
        assert_eq!(actual, expected.to_string());
        let actual = ticket(
            quote!(
                async fn f(&self) -> u8 {
                    1
                }
            ),
            quote!(cache = &self.cache, key = "k"),
        );
        let expected = quote! {
            let __cache_ticket = ::cache_runtime::__private::keyed_in(
                &self.cache,
                &__CACHE_SPEC,
                ::core::format_args!("k")
            );
        };
        assert_eq!(actual, expected.to_string());
        let actual = ticket(
            quote!(
                async fn f(&self) -> u8 {
                    1
                }
            ),
            quote!(cache = CACHE.get()),
        );
        let start = quote!(::cache_runtime::__private::hashed_typed_in(
            CACHE.get(),
            &__CACHE_SPEC
        ));
        let start = start.to_string();
        assert!(actual.contains(start.trim_end_matches(')')), "{actual}");
    }

    #[test]
    fn receivers_and_generics_put_their_types_in_the_key() {
        let with_self = |arg: TokenStream, marker: TokenStream| {
            quote! {
                let __cache_ticket = {
                    #marker
                    ::cache_runtime::__private::hashed_typed(
                        &__CACHE_SPEC,
                        &[::core::any::type_name::<Self>()],
                        &[#arg],
                    )
                };
            }
            .to_string()
        };
        let this = quote!(::cache_runtime::__private::arg_self(&self));
        for receiver in [
            quote!(&self),
            quote!(&'a self),
            quote!(&mut self),
            quote!(self),
            quote!(mut self),
            quote!(self: &Self),
            quote!(self: Box<Self>),
        ] {
            let actual = ticket(quote!(async fn m(#receiver) -> u8 { 1 }), quote!());
            assert_eq!(
                actual,
                with_self(this.clone(), quote!()),
                "receiver `{receiver}`"
            );
        }
        let actual = ticket(
            quote!(
                async fn m(&self, id: u64) -> u8 {
                    1
                }
            ),
            quote!(skip = [self]),
        );
        assert_eq!(
            actual,
            with_self(
                quote!(::cache_runtime::__private::arg::<id, _>(&id)),
                quote!(
                    #[allow(non_camel_case_types, dead_code)]
                    struct id {}
                )
            ),
            "a skipped self still names the type"
        );
        let actual = ticket(
            quote!(
                async fn g<'a, T: Serialize, const N: usize, U>(t: &'a T) -> u8 {
                    1
                }
            ),
            quote!(),
        );
        let expected = quote! {
            let __cache_ticket = {
                #[allow(non_camel_case_types, dead_code)] struct t {}
                ::cache_runtime::__private::hashed_typed(
                    &__CACHE_SPEC,
                    &[::core::any::type_name::<T>(), ::core::any::type_name::<U>()],
                    &[::cache_runtime::__private::arg::<t, _>(t)],
                )
            };
        };
        assert_eq!(actual, expected.to_string());
    }

    #[test]
    fn patterns_bind_units() {
        let actual = ticket(
            quote! {
                async fn handler(
                    Path(id): Path<u64>,
                    (a, _): (u32, u32),
                    Query { q, page: p @ 1.., .. }: Query,
                    _: State,
                    mut n: u8,
                ) -> String { Default::default() }
            },
            quote!(skip = [a]),
        );
        let marker = |name: &str| {
            let name = format_ident!("{}", name);
            quote!(#[allow(non_camel_case_types, dead_code)] struct #name {})
        };
        let (mid, mq, mp, mn) = (marker("id"), marker("q"), marker("p"), marker("n"));
        let expected = quote! {
            let __cache_ticket = {
                #mid #mq #mp #mn
                ::cache_runtime::__private::hashed(
                    &__CACHE_SPEC,
                    &[
                        ::cache_runtime::__private::arg::<id, _>(&id),
                        ::cache_runtime::__private::arg::<q, _>(&q),
                        ::cache_runtime::__private::arg::<p, _>(&p),
                        ::cache_runtime::__private::arg::<n, _>(&n)
                    ],
                    __cache_reuse,
                )
            };
        };
        assert_eq!(actual, expected.to_string());
    }

    #[test]
    fn modes() {
        let mode = |ret: TokenStream, attr: TokenStream| {
            let actual = expanded(attr, quote!(async fn f() #ret { Default::default() }));
            ["value", "result", "option"]
                .into_iter()
                .find(|mode| actual.contains(&format!("__cache_stored . {mode} (__cache_ticket")))
                .expect("a mode")
        };
        assert_eq!(mode(quote!(), quote!()), "value");
        assert_eq!(mode(quote!(-> u32), quote!()), "value");
        assert_eq!(mode(quote!(-> Result<u32, E>), quote!()), "result");
        assert_eq!(mode(quote!(-> std::io::Result<u32>), quote!()), "result");
        assert_eq!(mode(quote!(-> anyhow::Result<u32>), quote!()), "result");
        assert_eq!(mode(quote!(-> Option<u32>), quote!()), "option");
        assert_eq!(mode(quote!(-> (Option<u32>)), quote!()), "option");
        assert_eq!(mode(quote!(-> Vec<Option<u32>>), quote!()), "value");
        assert_eq!(mode(quote!(-> Result), quote!()), "value");
        assert_eq!(
            mode(quote!(-> Lookup), quote!(returns = "result")),
            "result"
        );
        assert_eq!(
            mode(quote!(-> Result<u8, E>), quote!(returns = "value")),
            "value"
        );
    }

    #[test]
    fn each_part_of_the_value_type_is_checked() {
        let checks = |ret: TokenStream, attr: TokenStream| {
            let actual = expanded(attr, quote!(async fn f() #ret { Default::default() }));
            let check = |name: &str| {
                let start = format!("__cache_kind . {name} :: < ");
                actual
                    .split(&start)
                    .skip(1)
                    .map(|rest| rest[..rest.find(" > () ;").expect("a check")].to_owned())
                    .collect::<Vec<_>>()
            };
            (check("check_part"), check("check_whole"))
        };
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            checks(quote!(-> Result<Option<View>, E>), quote!()),
            (strings(&["View"]), strings(&["Option < View >"]))
        );
        assert_eq!(
            checks(
                quote!(-> (u8, Vec<Box<View>>, HashMap<K, [V; 2]>, Box<str>)),
                quote!()
            ),
            (
                strings(&["u8", "View", "K", "V", "Box < str >"]),
                strings(&["(u8 , Vec < Box < View > > , HashMap < K , [V ; 2] > , Box < str >)"])
            )
        );
        assert_eq!(
            checks(quote!(-> (View, Option<View>, Page<View>)), quote!()),
            (
                strings(&["View", "Page < View >"]),
                strings(&["(View , Option < View > , Page < View >)"])
            ),
            "each part once"
        );
        let projection = ":: cache_runtime :: __private :: Returns > :: Value";
        let (parts, whole) = checks(quote!(-> Lookup), quote!(returns = "result"));
        assert!(
            parts.len() == 1 && parts[0].ends_with(projection),
            "{parts:?}"
        );
        assert_eq!(parts, whole);
        assert_eq!(
            checks(quote!(), quote!()),
            (strings(&["()"]), strings(&["()"]))
        );
        if cfg!(feature = "axum") {
            assert_eq!(
                checks(
                    quote!(-> Result<(StatusCode, Json<Vec<View>>), E>),
                    quote!()
                ),
                (
                    strings(&["u16", "View"]),
                    strings(&["(u16 , Vec < View >)"])
                )
            );
        }
    }

    #[test]
    fn not_an_async_fn() {
        let message = "`#[cache]` can only be applied to an `async fn`";
        assert_eq!(
            errors(
                quote!(),
                quote!(
                    fn f() {}
                )
            ),
            [message]
        );
        assert_eq!(
            errors(
                quote!(),
                quote!(
                    pub struct S;
                )
            ),
            [message]
        );
        assert_eq!(errors(quote!(), quote!(impl S {})), [message]);
        assert_eq!(
            errors(quote!(), quote!(async fn f(&self) -> u8;)),
            ["`#[cache]` needs a function body; it cannot be applied to a declaration without one"]
        );
    }

    #[test]
    fn errors_reemit_the_item() {
        let item = quote!(
            fn f() -> u8 {
                1
            }
        );
        let output = cache(quote!(), item.clone()).to_string();
        assert!(output.starts_with(":: core :: compile_error !"), "{output}");
        assert!(output.ends_with(&item.to_string()), "{output}");

        let output = cache(
            quote!(ttl = 5),
            quote!(
                async fn f() {}
            ),
        )
        .to_string();
        assert!(
            output.contains("unknown `cache` argument `ttl`"),
            "{output}"
        );
        assert!(output.ends_with("async fn f () { }"), "{output}");
    }

    #[test]
    fn names_checked_against_arguments() {
        assert_eq!(
            errors(
                quote!(skip = [db, foo, self], key = "{id}:{x}:{db}"),
                quote!(
                    async fn f(db: &Db, Path(id): Path<u64>) -> u8 {
                        1
                    }
                ),
            ),
            [
                "`skip` names `foo`, but this function has no argument `foo`",
                "`skip` names `self`, but this function has no argument `self`",
                "`key` refers to `{x}`, but this function has no argument `x`",
                "`key` refers to `{db}`, but `db` is listed in `skip`",
            ]
        );
    }

    #[test]
    fn impl_trait_return() {
        assert_eq!(
            errors(
                quote!(),
                quote!(
                    async fn f() -> Vec<impl Debug> {
                        Default::default()
                    }
                )
            ),
            ["`#[cache]` cannot store an `impl Trait` return value; name a concrete type"]
        );
    }

    #[test]
    fn any_number_of_arguments_is_hashed() {
        let names: Vec<Ident> = (0..40u32).map(|i| format_ident!("a{}", i)).collect();
        let actual = ticket(quote!(async fn f(#(#names: u8),*) -> u8 { 1 }), quote!());
        assert_eq!(actual.matches(":: arg :: <").count(), 40, "{actual}");
    }

    #[test]
    fn macro_pattern() {
        assert_eq!(
            errors(
                quote!(),
                quote!(
                    async fn f(pat!(): u8) -> u8 {
                        1
                    }
                )
            ),
            [
                "`#[cache]` cannot see the names this pattern binds; bind the argument to a name \
              instead"
            ]
        );
    }
}
