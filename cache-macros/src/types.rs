//! What the macros need to know of a type's syntax, whatever it is used for.

use syn::Type;

/// Removes the parentheses and invisible groups around a type.
pub(crate) fn strip(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Paren(paren) => ty = &paren.elem,
            Type::Group(group) => ty = &group.elem,
            _ => return ty,
        }
    }
}
