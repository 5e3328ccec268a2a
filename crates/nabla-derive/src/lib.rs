//! `#[derive(Module)]`: writes a struct's `nabla_nn::Module` impl from its fields.
//!
//! The struct writes its own `forward` as an inherent method; the derive
//! writes everything that only walks fields: the parameter and buffer
//! visitors, `for_each_param_mut`, `set_training`, `couples_batch`,
//! `children_mut` and a default `describe`. Names follow PyTorch's state
//! dicts: a field `fc1` holding a `Linear` gives `fc1.weight` and
//! `fc1.bias`; a `Vec` of layers named `layers` gives `layers.0.weight`,
//! `layers.1.weight`, … as `nn.ModuleList` does.
//!
//! How a field is treated follows from its type as written:
//!
//! | field type | treated as |
//! | --- | --- |
//! | `Param<T>` | a parameter named after the field |
//! | `Option<Param<T>>` | a parameter when present (a layer's optional bias) |
//! | numbers, `bool`, `String`, `PhantomData`, `Vec`/`Option` of those | plain data, not visited |
//! | `Vec<M>` | sub-modules numbered `field.0`, `field.1`, … |
//! | `Option<M>` | a sub-module when present |
//! | anything else | a sub-module (it must implement `Module`) |
//!
//! Field attributes: `#[module(skip)]` (not visited), `#[module(buffer)]`
//! (a `Tensor<T>` saved with the model but not trained, PyTorch's
//! `register_buffer`), `#[module(flatten)]` (the field's children are named
//! without the field's name, as `nn.Sequential` names its layers `0`, `1`, …).
//!
//! Struct attributes: `#[module(crate = path)]` (where `Module` lives;
//! default `::nabla::nn`), and `predict`, `describe`, `set_training`,
//! `couples_batch`, each of which hands that method to an inherent method
//! of the same name instead of writing it.
//!
//! A struct that derives `Module` but has no inherent `forward` (or no
//! inherent method for an option it hands over) does not compile: the
//! error names a trait called `AddAnInherentFnForwardToTheStruct` (or
//! `…Predict…`, `…Describe…`), which says what is missing.
//!
//! A struct with a type parameter implements `Module<T>` for that
//! parameter (the first one, which must be the float type); a struct
//! without one implements `Module<f32>`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::quote;
use syn::{
    parse_macro_input, parse_quote, Data, DeriveInput, Fields, GenericArgument, Ident, LitStr,
    Path, PathArguments, Type,
};

/// Writes the `Module` impl of a struct from its fields (see the crate docs).
#[proc_macro_derive(Module, attributes(module))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// How a field takes part in the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Skip,
    Param,
    OptParam,
    Buffer,
    Module,
    OptModule,
    Modules,
}

struct Field {
    ident: Ident,
    role: Role,
    flatten: bool,
}

/// Options of the struct's `#[module(...)]` attribute.
#[derive(Default)]
struct Options {
    krate: Option<Path>,
    predict: bool,
    describe: bool,
    set_training: bool,
    couples_batch: bool,
}

fn expand(mut input: DeriveInput) -> syn::Result<Tokens> {
    let options = struct_options(&input)?;
    let krate = options
        .krate
        .clone()
        .unwrap_or_else(|| parse_quote!(::nabla::nn));
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "derive(Module) needs a struct: an enum or union has no fixed fields to visit",
        ));
    };
    let fields = match &data.fields {
        Fields::Named(named) => named
            .named
            .iter()
            .map(field)
            .collect::<syn::Result<Vec<_>>>()?,
        Fields::Unit => Vec::new(),
        Fields::Unnamed(_) => {
            return Err(syn::Error::new_spanned(
                &input.ident,
                "derive(Module) needs named fields: their names become the parameters' names",
            ))
        }
    };
    if let Some(lt) = input.generics.lifetimes().next() {
        return Err(syn::Error::new_spanned(
            lt,
            "derive(Module) does not take lifetime parameters: a module owns its layers",
        ));
    }
    let float: Type = match input.generics.type_params().next() {
        Some(t) => {
            let ident = &t.ident;
            parse_quote!(#ident)
        }
        None => parse_quote!(f32),
    };
    let d = quote!(#krate::__derive);
    if input.generics.type_params().next().is_some() {
        input
            .generics
            .make_where_clause()
            .predicates
            .push(parse_quote!(#float: #d::Float));
    }
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();

    let visit = |mutable: bool| {
        let (r, iter) = if mutable {
            (quote!(&mut), quote!(iter_mut))
        } else {
            (quote!(&), quote!(iter))
        };
        let method = if mutable {
            quote!(visit_params_mut)
        } else {
            quote!(visit_params)
        };
        let body = fields.iter().map(|f| {
            let id = &f.ident;
            let key = LitStr::new(&id.to_string(), Span::call_site());
            let named = if f.flatten {
                quote!(prefix.to_string())
            } else {
                quote!(#d::join_name(prefix, #key))
            };
            match f.role {
                Role::Param => quote!(f(#named, #r self.#id);),
                Role::OptParam => quote!(if let Some(p) = #r self.#id { f(#named, p); }),
                Role::Module => quote!(#d::Module::<#float>::#method(#r self.#id, &#named, f);),
                Role::OptModule => quote!(
                    if let Some(m) = #r self.#id { #d::Module::<#float>::#method(m, &#named, f); }
                ),
                Role::Modules => quote!(
                    let base = #named;
                    for (i, m) in self.#id.#iter().enumerate() {
                        #d::Module::<#float>::#method(m, &#d::join_name(&base, &i.to_string()), f);
                    }
                ),
                Role::Skip | Role::Buffer => quote!(),
            }
        });
        quote!(#(#body)*)
    };
    let visit_params = visit(false);
    let visit_params_mut = visit(true);

    let buffers = |mutable: bool| {
        let (r, iter, method) = if mutable {
            (quote!(&mut), quote!(iter_mut), quote!(visit_buffers_mut))
        } else {
            (quote!(&), quote!(iter), quote!(visit_buffers))
        };
        let body = fields.iter().map(|f| {
            let id = &f.ident;
            let key = LitStr::new(&id.to_string(), Span::call_site());
            let named = if f.flatten {
                quote!(prefix.to_string())
            } else {
                quote!(#d::join_name(prefix, #key))
            };
            match f.role {
                Role::Buffer if mutable => quote!(f(#named, &mut self.#id);),
                Role::Buffer => quote!(f(#named, self.#id.clone());),
                Role::Module => quote!(#d::Module::<#float>::#method(#r self.#id, &#named, f);),
                Role::OptModule => quote!(
                    if let Some(m) = #r self.#id { #d::Module::<#float>::#method(m, &#named, f); }
                ),
                Role::Modules => quote!(
                    let base = #named;
                    for (i, m) in self.#id.#iter().enumerate() {
                        #d::Module::<#float>::#method(m, &#d::join_name(&base, &i.to_string()), f);
                    }
                ),
                Role::Skip | Role::Param | Role::OptParam => quote!(),
            }
        });
        quote!(#(#body)*)
    };
    let visit_buffers = buffers(false);
    let visit_buffers_mut = buffers(true);

    let each_param = fields.iter().map(|f| {
        let id = &f.ident;
        match f.role {
            Role::Param => quote!(f(&mut self.#id);),
            Role::OptParam => quote!(if let Some(p) = &mut self.#id { f(p); }),
            Role::Module => quote!(#d::Module::<#float>::for_each_param_mut(&mut self.#id, f);),
            Role::OptModule => {
                quote!(if let Some(m) = &mut self.#id { #d::Module::<#float>::for_each_param_mut(m, f); })
            }
            Role::Modules => quote!(
                for m in self.#id.iter_mut() { #d::Module::<#float>::for_each_param_mut(m, f); }
            ),
            Role::Skip | Role::Buffer => quote!(),
        }
    });

    let children = fields.iter().map(|f| {
        let id = &f.ident;
        let key = id.to_string();
        let named = |i: Tokens| {
            if f.flatten {
                quote!(#i.to_string())
            } else {
                let fmt = LitStr::new(&format!("{key}.{{}}"), Span::call_site());
                quote!(format!(#fmt, #i))
            }
        };
        match f.role {
            Role::Module => quote!(out.push((#key.to_string(), &mut self.#id as &mut dyn #d::Module<#float>));),
            Role::OptModule => quote!(
                if let Some(m) = &mut self.#id { out.push((#key.to_string(), m as &mut dyn #d::Module<#float>)); }
            ),
            Role::Modules => {
                let n = named(quote!(i));
                quote!(
                    for (i, m) in self.#id.iter_mut().enumerate() {
                        out.push((#n, m as &mut dyn #d::Module<#float>));
                    }
                )
            }
            _ => quote!(),
        }
    });

    let modules: Vec<&Field> = fields
        .iter()
        .filter(|f| matches!(f.role, Role::Module | Role::OptModule | Role::Modules))
        .collect();
    let set_training = if options.set_training {
        let call = inherent(
            "set_training",
            quote!(fn(&mut Self, bool)),
            "AddAnInherentFnSetTrainingToTheStruct",
        );
        quote!((#call)(self, training);)
    } else {
        let each = modules.iter().map(|f| {
            let id = &f.ident;
            match f.role {
                Role::Module => quote!(#d::Module::<#float>::set_training(&mut self.#id, training);),
                Role::OptModule => {
                    quote!(if let Some(m) = &mut self.#id { #d::Module::<#float>::set_training(m, training); })
                }
                _ => quote!(
                    for m in self.#id.iter_mut() { #d::Module::<#float>::set_training(m, training); }
                ),
            }
        });
        quote!(let _ = training; #(#each)*)
    };
    let couples_batch = if options.couples_batch {
        let call = inherent(
            "couples_batch",
            quote!(fn(&Self) -> bool),
            "AddAnInherentFnCouplesBatchToTheStruct",
        );
        quote!((#call)(self))
    } else {
        let each = modules.iter().map(|f| {
            let id = &f.ident;
            match f.role {
                Role::Module => quote!(|| #d::Module::<#float>::couples_batch(&self.#id)),
                Role::OptModule => {
                    quote!(|| self.#id.as_ref().is_some_and(|m| #d::Module::<#float>::couples_batch(m)))
                }
                _ => quote!(|| self.#id.iter().any(|m| #d::Module::<#float>::couples_batch(m))),
            }
        });
        quote!(false #(#each)*)
    };
    let describe = if options.describe {
        let call = inherent(
            "describe",
            quote!(fn(&Self) -> String),
            "AddAnInherentFnDescribeToTheStruct",
        );
        quote!((#call)(self))
    } else {
        let parts = modules.iter().map(|f| {
            let id = &f.ident;
            let key = id.to_string();
            match f.role {
                Role::Module => {
                    quote!(parts.push(format!("{}: {}", #key, #d::Module::<#float>::describe(&self.#id)));)
                }
                Role::OptModule => quote!(
                    if let Some(m) = &self.#id { parts.push(format!("{}: {}", #key, #d::Module::<#float>::describe(m))); }
                ),
                _ => quote!(
                    let inner: Vec<String> = self.#id.iter().map(|m| #d::Module::<#float>::describe(m)).collect();
                    parts.push(format!("{}: [{}]", #key, inner.join(", ")));
                ),
            }
        });
        let title = name.to_string();
        quote!({
            let mut parts: Vec<String> = Vec::new();
            #(#parts)*
            if parts.is_empty() {
                #title.to_string()
            } else {
                format!("{}[{}]", #title, parts.join(", "))
            }
        })
    };
    let predict = options.predict.then(|| {
        let call = inherent(
            "predict",
            quote!(fn(&Self, &#d::Tensor<#float>) -> #d::Result<#d::Tensor<#float>>),
            "AddAnInherentFnPredictToTheStruct",
        );
        quote!(
            fn predict(&self, x: &#d::Tensor<#float>) -> #d::Result<#d::Tensor<#float>> {
                (#call)(self, x)
            }
        )
    });
    let forward = inherent(
        "forward",
        quote!(fn(&Self, #d::Var<'t, #float>) -> #d::Result<#d::Var<'t, #float>>),
        "AddAnInherentFnForwardToTheStruct",
    );

    Ok(quote! {
        impl #impl_generics #d::Module<#float> for #name #ty_generics #where_clause {
            fn forward<'t>(&self, x: #d::Var<'t, #float>) -> #d::Result<#d::Var<'t, #float>> {
                (#forward)(self, x)
            }

            #predict

            fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(String, &'a #d::Param<#float>)) {
                let _ = (&prefix, &f);
                #visit_params
            }

            fn visit_params_mut<'a>(
                &'a mut self,
                prefix: &str,
                f: &mut dyn FnMut(String, &'a mut #d::Param<#float>),
            ) {
                let _ = (&prefix, &f);
                #visit_params_mut
            }

            fn for_each_param_mut(&mut self, f: &mut dyn FnMut(&mut #d::Param<#float>)) {
                let _ = &f;
                #(#each_param)*
            }

            fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(String, #d::Tensor<#float>)) {
                let _ = (&prefix, &f);
                #visit_buffers
            }

            fn visit_buffers_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, &mut #d::Tensor<#float>)) {
                let _ = (&prefix, &f);
                #visit_buffers_mut
            }

            fn couples_batch(&self) -> bool {
                #couples_batch
            }

            fn describe(&self) -> String {
                #describe
            }

            fn children_mut(&mut self) -> Vec<(String, &mut dyn #d::Module<#float>)> {
                #[allow(unused_mut)]
                let mut out: Vec<(String, &mut dyn #d::Module<#float>)> = Vec::new();
                #(#children)*
                out
            }

            fn set_training(&mut self, training: bool) {
                #set_training
            }
        }
    })
}

/// An expression naming the struct's own (inherent) method `name` as a
/// function pointer of type `sig`, refusing to compile when there is none.
///
/// `Self::name` would otherwise fall back to the `Module` method of the
/// same name, which calls this very code: a recursion no warning reports
/// from inside a macro. So a local trait whose only method has that name is
/// put in scope beside it: an inherent method still wins, but without one
/// the path is ambiguous (or, without `Module` in scope, of the wrong type),
/// and the compiler's message names the trait, which says what to do.
fn inherent(name: &str, sig: Tokens, hint: &str) -> Tokens {
    let method = Ident::new(name, Span::call_site());
    let hint = Ident::new(hint, Span::call_site());
    quote!({
        #[allow(non_camel_case_types, dead_code)]
        trait #hint {
            fn #method(&self, _: ()) {}
        }
        impl<X: ?Sized> #hint for X {}
        let own: #sig = Self::#method;
        own
    })
}

fn struct_options(input: &DeriveInput) -> syn::Result<Options> {
    let mut o = Options::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("module")) {
        attr.parse_nested_meta(|meta| {
            let flag = |o: &mut bool| {
                *o = true;
                Ok(())
            };
            if meta.path.is_ident("crate") {
                o.krate = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("predict") {
                flag(&mut o.predict)
            } else if meta.path.is_ident("describe") {
                flag(&mut o.describe)
            } else if meta.path.is_ident("set_training") {
                flag(&mut o.set_training)
            } else if meta.path.is_ident("couples_batch") {
                flag(&mut o.couples_batch)
            } else {
                Err(meta.error(
                    "unknown module option: expected crate = path, predict, describe, set_training or couples_batch",
                ))
            }
        })?;
    }
    Ok(o)
}

fn field(f: &syn::Field) -> syn::Result<Field> {
    let ident = f.ident.clone().expect("named fields have names");
    let (mut skip, mut buffer, mut flatten) = (false, false, false);
    for attr in f.attrs.iter().filter(|a| a.path().is_ident("module")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                skip = true;
            } else if meta.path.is_ident("buffer") {
                buffer = true;
            } else if meta.path.is_ident("flatten") {
                flatten = true;
            } else {
                return Err(meta.error("unknown field option: expected skip, buffer or flatten"));
            }
            Ok(())
        })?;
    }
    let role = if skip {
        Role::Skip
    } else if buffer {
        Role::Buffer
    } else {
        role_of(&f.ty)
    };
    if flatten && !matches!(role, Role::Module | Role::Modules) {
        return Err(syn::Error::new_spanned(
            &f.ty,
            "#[module(flatten)] is for a sub-module or a Vec of them",
        ));
    }
    Ok(Field {
        ident,
        role,
        flatten,
    })
}

/// The last path segment of a type and its first type argument.
fn last_segment(ty: &Type) -> Option<(String, Option<&Type>)> {
    let Type::Path(p) = ty else { return None };
    let seg = p.path.segments.last()?;
    let arg = match &seg.arguments {
        PathArguments::AngleBracketed(a) => a.args.iter().find_map(|g| match g {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        _ => None,
    };
    Some((seg.ident.to_string(), arg))
}

/// Types that hold no layers: numbers, flags, text, markers.
fn is_plain(ty: &Type) -> bool {
    const PLAIN: &[&str] = &[
        "bool",
        "char",
        "String",
        "str",
        "usize",
        "u8",
        "u16",
        "u32",
        "u64",
        "u128",
        "isize",
        "i8",
        "i16",
        "i32",
        "i64",
        "i128",
        "f32",
        "f64",
        "PhantomData",
    ];
    match ty {
        Type::Reference(_) | Type::Array(_) | Type::Tuple(_) | Type::Slice(_) => true,
        _ => match last_segment(ty) {
            Some((name, arg)) if name == "Vec" || name == "Option" || name == "Box" => {
                arg.is_some_and(is_plain)
            }
            Some((name, _)) => PLAIN.contains(&name.as_str()),
            None => false,
        },
    }
}

fn role_of(ty: &Type) -> Role {
    if is_plain(ty) {
        return Role::Skip;
    }
    match last_segment(ty) {
        Some((name, _)) if name == "Param" => Role::Param,
        Some((name, Some(inner))) if name == "Option" => {
            if last_segment(inner).is_some_and(|(n, _)| n == "Param") {
                Role::OptParam
            } else {
                Role::OptModule
            }
        }
        Some((name, Some(_))) if name == "Vec" => Role::Modules,
        _ => Role::Module,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(src: &str) -> Result<String, String> {
        let input: DeriveInput = syn::parse_str(src).unwrap();
        expand(input)
            .map(|t| t.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn fields_are_classified_by_their_types() {
        let ty = |s: &str| syn::parse_str::<Type>(s).unwrap();
        assert_eq!(role_of(&ty("Param<T>")), Role::Param);
        assert_eq!(role_of(&ty("Option<Param<f32>>")), Role::OptParam);
        assert_eq!(role_of(&ty("Linear<T>")), Role::Module);
        assert_eq!(role_of(&ty("Option<Dropout>")), Role::OptModule);
        assert_eq!(role_of(&ty("Vec<Box<dyn Module<T>>>")), Role::Modules);
        assert_eq!(role_of(&ty("Vec<usize>")), Role::Skip);
        assert_eq!(role_of(&ty("usize")), Role::Skip);
        assert_eq!(role_of(&ty("std::marker::PhantomData<T>")), Role::Skip);
        assert_eq!(role_of(&ty("Option<f64>")), Role::Skip);
    }

    #[test]
    fn names_follow_pytorch() {
        let out = expand_str("struct Net { fc1: Linear, layers: Vec<Linear> }").unwrap();
        assert!(out.contains("\"fc1\""), "{out}");
        assert!(out.contains("\"layers\""), "{out}");
        assert!(out.contains("impl :: nabla :: nn :: __derive :: Module < f32 > for Net"));
        let generic = expand_str(
            "#[module(crate = crate)] struct L<T: Float> { weight: Param<T>, bias: Option<Param<T>> }",
        )
        .unwrap();
        assert!(generic.contains("Module < T > for L < T >"), "{generic}");
    }

    #[test]
    fn misuse_is_a_clear_compile_error() {
        let e = expand_str("enum E { A, B }").unwrap_err();
        assert!(e.contains("needs a struct"), "{e}");
        let e = expand_str("struct T(Linear);").unwrap_err();
        assert!(e.contains("needs named fields"), "{e}");
        let e = expand_str("struct N { #[module(weights)] a: Linear }").unwrap_err();
        assert!(e.contains("unknown field option"), "{e}");
        let e = expand_str("#[module(fast)] struct N { a: Linear }").unwrap_err();
        assert!(e.contains("unknown module option"), "{e}");
        let e = expand_str("struct N { #[module(flatten)] a: Param<f32> }").unwrap_err();
        assert!(e.contains("flatten"), "{e}");
        let e = expand_str("struct N<'a> { a: &'a Linear }").unwrap_err();
        assert!(e.contains("lifetime"), "{e}");
    }
}
