//! What `#[cache]` knows of axum handlers (with the `axum` feature): which extractors are
//! left out of the key or hashed through their inner value, which return types are stored by
//! their inner value, and which cannot be stored at all. Syntax only: types are recognized
//! by the last segment of their path, as `Result` and `Option` are.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::{GenericArgument, PathArguments, Type, TypePath};

use crate::types::strip;

/// How an argument's extractor type is treated.
pub(crate) enum Extractor {
    /// `State<_>`: application state, never part of the key.
    State,
    /// `Path<_>`, `Query<_>`, `Json<_>`, `Form<_>`, `Extension<_>` bound to a name: hashed
    /// through `.0`, its inner value. (`Extension<_>` carries per-request data such as the
    /// signed-in user, so it is hashed like the others, never skipped.)
    Wrapper,
}

/// The last segment of a path type and its generic arguments, if `ty` is one.
fn last(ty: &Type) -> Option<(String, Vec<&Type>)> {
    let Type::Path(TypePath { qself: None, path }) = strip(ty) else {
        return None;
    };
    let segment = path.segments.last()?;
    let args = match &segment.arguments {
        PathArguments::AngleBracketed(args) => args
            .args
            .iter()
            .filter_map(|arg| match arg {
                GenericArgument::Type(ty) => Some(ty),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Some((segment.ident.to_string(), args))
}

/// What an argument of type `ty` is, when it is an extractor `#[cache]` knows.
pub(crate) fn extractor(ty: &Type) -> Option<Extractor> {
    let (name, args) = last(ty)?;
    if args.is_empty() {
        return None;
    }
    match name.as_str() {
        "State" => Some(Extractor::State),
        "Path" | "Query" | "Json" | "Form" | "Extension" => Some(Extractor::Wrapper),
        _ => None,
    }
}

/// The `__private` shape of a return type stored by its inner value: `Json<T>`, `Html<T>`,
/// `(StatusCode, S)`, and `Result<S, E>` / `Option<S>` of those, with the type it stores (the
/// shape's `Value`, spelled out so that naming it needs no serde bounds). `None` for other
/// types.
pub(crate) fn shape(ty: &Type) -> Option<(TokenStream, Type)> {
    let private = quote!(::cache_runtime::__private::web);
    if let Type::Tuple(tuple) = strip(ty) {
        let mut elems = tuple.elems.iter();
        let (Some(status), Some(inner), None) = (elems.next(), elems.next(), elems.next()) else {
            return None;
        };
        if last(status)?.0 != "StatusCode" {
            return None;
        }
        let (inner, value) =
            shape(inner).unwrap_or_else(|| (quote!(#private::PlainOf<#inner>), inner.clone()));
        return Some((
            quote!(#private::StatusOf<#inner>),
            syn::parse_quote!((u16, #value)),
        ));
    }
    let (name, args) = last(ty)?;
    match (name.as_str(), args.as_slice()) {
        ("Json", [inner]) => Some((quote!(#private::JsonOf<#inner>), (*inner).clone())),
        ("Html", [inner]) => Some((quote!(#private::HtmlOf<#inner>), (*inner).clone())),
        ("Result", [ok, rest @ ..]) => {
            let (ok, value) = shape(ok)?;
            let err = rest
                .first()
                .map_or_else(|| quote!(_), |e| e.to_token_stream());
            Some((quote!(#private::ResultOf<#ok, #err>), value))
        }
        ("Option", [some]) => {
            let (some, value) = shape(some)?;
            Some((quote!(#private::OptionOf<#some>), value))
        }
        _ => None,
    }
}

/// Why a return type cannot be stored, when it is a whole response.
pub(crate) fn unstorable(ty: &Type) -> Option<syn::Error> {
    let message = "`#[cache]` cannot store a whole response; return the value it is built \
                   from (`Json<T>`, `Html<String>`, `String`, `(StatusCode, Json<T>)`, or a \
                   `Result` or `Option` of those), or cache the response with a response \
                   cache layer (a tower `Layer` in front of the handler)";
    match strip(ty) {
        Type::ImplTrait(impl_trait) => {
            let names_into_response = impl_trait
                .bounds
                .iter()
                .any(|bound| bound.to_token_stream().to_string().contains("IntoResponse"));
            names_into_response.then(|| syn::Error::new_spanned(impl_trait, message))
        }
        _ => {
            let (name, args) = last(ty)?;
            match (name.as_str(), args.as_slice()) {
                ("Response", _) => Some(syn::Error::new_spanned(ty, message)),
                ("Result" | "Option", [inner, ..]) => unstorable(inner),
                _ => None,
            }
        }
    }
}

/// The expression that hashes an extractor bound to `ident`: its inner value.
pub(crate) fn inner_of(ident: &syn::Ident) -> TokenStream {
    quote_spanned!(ident.span()=> &#ident.0)
}
