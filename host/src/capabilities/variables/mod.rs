//! Host side of `fermyon:spin/variables@2.0.0`: a guest's `get` is a look-up in the variables
//! resolved once at start (`config::variables`).

pub mod bindings;

use anyhow::Result;
use wasmtime::component::{HasData, Linker};

use crate::config::variables::{validate_name, ComponentVariables};
use bindings::fermyon::spin::variables::{self, Error};

/// What a guest's `fermyon:spin/variables` calls see of the host state.
pub struct VariablesView<'a> {
    /// The calling component's variables.
    pub variables: &'a ComponentVariables,
}

impl variables::Host for VariablesView<'_> {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, Error>> {
        Ok(lookup(self.variables, &name))
    }
}

struct VariablesData;

impl HasData for VariablesData {
    type Data<'a> = VariablesView<'a>;
}

/// Adds `fermyon:spin/variables@2.0.0` to the linker.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> VariablesView<'_>,
) -> Result<()> {
    variables::add_to_linker::<T, VariablesData>(linker, get).map_err(anyhow::Error::from)
}

/// Answers a guest's `get` with Spin's errors.
fn lookup(variables: &ComponentVariables, name: &str) -> Result<String, Error> {
    validate_name(name).map_err(Error::InvalidName)?;
    variables.get(name).map(str::to_string).ok_or_else(|| {
        Error::Undefined(format!(
            "no variable for {:?}.{name:?}",
            variables.component()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::manifest::VariableDecl;
    use crate::config::variables::AppVariables;
    use std::collections::BTreeMap;

    fn decls() -> BTreeMap<String, VariableDecl> {
        let mut decls = BTreeMap::new();
        decls.insert(
            "products_database".to_string(),
            VariableDecl {
                required: true,
                ..Default::default()
            },
        );
        decls
    }

    #[test]
    fn lookup_follows_spin_errors() {
        let app = AppVariables::resolve(&decls(), |_| Some("v".to_string())).unwrap();
        let mut templates = BTreeMap::new();
        templates.insert(
            "database".to_string(),
            "{{ products_database }}".to_string(),
        );
        let vars = ComponentVariables::resolve("products", &templates, &app).unwrap();
        assert_eq!(lookup(&vars, "database").unwrap(), "v");
        assert!(matches!(lookup(&vars, "other"), Err(Error::Undefined(_))));
        for bad in ["", "Database", "1x", "x_", "a__b", "a-b"] {
            assert!(
                matches!(lookup(&vars, bad), Err(Error::InvalidName(_))),
                "{bad}"
            );
        }
    }
}
