//! `#[invalidate(...)]`: parse the targets, then emit the write wrapped in an invalidation
//! (`__private::Invalidation`): its fences moved before the body, its targets cleared after a
//! body that succeeded.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned as _;
use syn::{token, Expr, Ident, LitStr, ReturnType, Token};

use crate::attr::{parse_namespace, placeholders, string_literal};
use crate::expand::{fake_return, template_args, units, CachedFn, Errors, NOT_ASYNC_FN};

/// The arguments of `#[invalidate(...)]`.
#[derive(Default)]
pub(crate) struct InvalidateArgs {
    namespaces: Vec<String>,
    keys: Vec<LitStr>,
    entries: Vec<Expr>,
    cache: Option<Expr>,
}

/// One value, or several in brackets: `namespace = "a"`, `namespace = ["a", "b"]`.
fn one_or_many(input: ParseStream<'_>) -> syn::Result<Vec<Expr>> {
    if input.peek(token::Bracket) {
        let content;
        syn::bracketed!(content in input);
        let items = content.parse_terminated(Expr::parse, Token![,])?;
        Ok(items.into_iter().collect())
    } else {
        Ok(vec![input.parse()?])
    }
}

impl Parse for InvalidateArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = InvalidateArgs::default();
        let mut seen: Vec<String> = Vec::new();
        while !input.is_empty() {
            let name = Ident::parse_any(input)?;
            let name_str = name.to_string();
            if seen.contains(&name_str) {
                return Err(syn::Error::new(
                    name.span(),
                    format!(
                        "duplicate `invalidate` argument `{name_str}`; list several targets in \
                         brackets, like `{name_str} = [\"a\", \"b\"]`"
                    ),
                ));
            }
            seen.push(name_str.clone());
            input.parse::<Token![=]>()?;
            match name_str.as_str() {
                "namespace" => {
                    for value in one_or_many(input)? {
                        args.namespaces.push(parse_namespace(&value)?);
                    }
                }
                "key" => {
                    for value in one_or_many(input)? {
                        args.keys
                            .push(string_literal(&value, "key", "\"users:user:{id}\"")?);
                    }
                }
                "entry" => args.entries = one_or_many(input)?,
                "cache" => args.cache = Some(input.parse()?),
                _ => {
                    return Err(syn::Error::new(
                        name.span(),
                        format!(
                            "unknown `invalidate` argument `{name}`; expected one of \
                             `namespace`, `key`, `entry`, `cache`"
                        ),
                    ))
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        if args.namespaces.is_empty() && args.keys.is_empty() && args.entries.is_empty() {
            return Err(syn::Error::new(
                Span::call_site(),
                "`#[invalidate]` needs a target: `namespace = \"...\"`, `key = \
                 \"namespace:key\"` or `entry = cached_fn(args)`",
            ));
        }
        Ok(args)
    }
}

pub(crate) fn invalidate(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr, item.clone()) {
        Ok(tokens) => tokens,
        Err(error) => {
            let mut tokens = error.to_compile_error();
            tokens.extend(item);
            tokens
        }
    }
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = syn::parse2::<InvalidateArgs>(attr)?;
    let CachedFn {
        outer_attrs,
        vis,
        sig,
        brace,
        inner_attrs,
        body,
    } = syn::parse2::<CachedFn>(item)?;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span,
            NOT_ASYNC_FN.replace("#[cache]", "#[invalidate]"),
        ));
    }
    let units = units(&sig)?;
    let mut errors = Errors::default();
    let mut targets = Vec::new();
    for namespace in &args.namespaces {
        targets.push(quote!(.namespace(#namespace)));
    }
    for lit in &args.keys {
        let text = lit.value();
        let Some((namespace, key)) = text.split_once(':') else {
            errors.push(
                lit.span(),
                "an invalidated `key` names its namespace: `\"namespace:key\"` (or \
                 `\":key\"` for a key without one)",
            );
            continue;
        };
        if namespace.contains(['{', '}']) {
            errors.push(
                lit.span(),
                "the namespace of a `key` is fixed: no `{...}` in it",
            );
            continue;
        }
        let names = match placeholders(key) {
            Ok(names) => names,
            Err(message) => {
                errors.push(lit.span(), message);
                continue;
            }
        };
        let (key, named) = template_args(lit, key, &names, &units, &|_| false, &mut errors);
        targets.push(quote!(.key(#namespace, ::core::format_args!(#key #(, #named)*))));
    }
    for entry in &args.entries {
        targets.push(quote_spanned! {entry.span()=>
            .entry(::cache_runtime::__private::entry_of(#entry))
        });
    }
    errors.finish()?;

    let function = sig.ident.unraw().to_string();
    let name = quote!(::core::concat!(::core::module_path!(), "::", #function));
    let start = match &args.cache {
        Some(cache) => quote!(::cache_runtime::__private::Invalidation::of(#cache, #name)),
        None => quote!(::cache_runtime::__private::Invalidation::of_default(#name)),
    };
    let (ret_ty, ret_span) = match &sig.output {
        ReturnType::Type(_, ty) => (ty.to_token_stream(), ty.span()),
        ReturnType::Default => (quote!(()), sig.ident.span()),
    };
    let fake_return = fake_return(&ret_ty, ret_span);
    let mut block = TokenStream::new();
    brace.surround(&mut block, |tokens| tokens.extend(body));
    Ok(quote! {
        #(#outer_attrs)*
        #vis #sig {
            #(#inner_attrs)*
            let __cache_invalidation = #start #(#targets)*;
            let __cache_invalidation = __cache_invalidation.begin().await;
            let __cache_result: #ret_ty = __cache_invalidation
                .during(async move {
                    #fake_return
                    #block
                })
                .await;
            {
                #[allow(unused_imports)]
                use ::cache_runtime::__private::{Succeeds as _, SucceedsAlways as _};
                __cache_invalidation
                    .finish((&&::cache_runtime::__private::Check(&__cache_result)).succeeded())
                    .await;
            }
            __cache_result
        }
    })
}
