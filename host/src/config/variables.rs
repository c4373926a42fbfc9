//! Host side of `fermyon:spin/variables@2.0.0`, with Spin's resolution rules.
//!
//! Application variables (`[variables]`) take their value from the environment
//! (`SPIN_VARIABLE_<NAME>`), else from their `default`. Component variables are templates
//! over them (`"{{ products_database }}"`). Everything is resolved once at start, so a
//! missing required variable stops the host before it serves, and a guest's `get` is a
//! map look-up.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Result};

use crate::config::manifest::VariableDecl;

/// The resolved values of the application variables.
#[derive(Debug, Default)]
pub struct AppVariables {
    values: HashMap<String, String>,
}

/// The resolved variables of one component, as its guest sees them.
#[derive(Debug, Default, Clone)]
pub struct ComponentVariables {
    component: String,
    values: HashMap<String, String>,
}

/// The environment variable that sets the application variable `name`.
pub fn env_var_name(name: &str) -> String {
    format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())
}

/// Checks a variable name with Spin's rules; the error is the reason, for `invalid-name`.
pub fn validate_name(name: &str) -> Result<(), String> {
    let reason = if name.is_empty() {
        "must not be empty".to_string()
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        format!("invalid character {c:?}. Variable names may contain only lower-case letters, numbers, and underscores.")
    } else if !name.as_bytes()[0].is_ascii_lowercase() {
        "must start with a lowercase ASCII letter".to_string()
    } else if !name.as_bytes()[name.len() - 1].is_ascii_alphanumeric() {
        "must end with a lowercase ASCII letter or digit".to_string()
    } else if name.contains("__") {
        "must not contain multiple consecutive underscores".to_string()
    } else {
        return Ok(());
    };
    Err(format!("{name:?}: {reason}"))
}

impl AppVariables {
    /// Resolves the application variables; `lookup_env` is `std::env::var` outside tests.
    pub fn resolve(
        decls: &BTreeMap<String, VariableDecl>,
        lookup_env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let mut values = HashMap::new();
        let mut missing = Vec::new();
        for (name, decl) in decls {
            if let Err(reason) = validate_name(name) {
                bail!("invalid application variable name {reason}");
            }
            if decl.required && decl.default.is_some() {
                bail!("variable `{name}` is required and has a default: give it one or the other");
            }
            match lookup_env(&env_var_name(name)).or_else(|| decl.default.clone()) {
                Some(value) => {
                    values.insert(name.clone(), value);
                }
                None if decl.required => missing.push(name.as_str()),
                // An optional variable without a value: a template that uses it fails below.
                None => {}
            }
        }
        if !missing.is_empty() {
            let list = missing
                .iter()
                .map(|name| format!("`{name}` (set {})", env_var_name(name)))
                .collect::<Vec<_>>()
                .join(", ");
            bail!("required variable(s) not set: {list}");
        }
        Ok(Self { values })
    }

    /// Expands a component variable template such as `"prefix-{{ name }}"`.
    pub fn expand(&self, template: &str) -> Result<String> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                bail!("unterminated `{{{{` in {template:?}");
            };
            let name = after[..end].trim();
            match self.values.get(name) {
                Some(value) => out.push_str(value),
                None => bail!(
                    "{template:?} uses `{name}`, which is not a [variables] entry with a value"
                ),
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

impl ComponentVariables {
    /// Resolves a component's `[component.<id>.variables]` templates.
    pub fn resolve(
        component: &str,
        templates: &BTreeMap<String, String>,
        app: &AppVariables,
    ) -> Result<Self> {
        let mut values = HashMap::with_capacity(templates.len());
        for (name, template) in templates {
            if let Err(reason) = validate_name(name) {
                bail!("component `{component}`: invalid variable name {reason}");
            }
            let value = app.expand(template).map_err(|err| {
                anyhow::anyhow!("component `{component}`, variable `{name}`: {err}")
            })?;
            values.insert(name.clone(), value);
        }
        Ok(Self {
            component: component.to_string(),
            values,
        })
    }

    /// The names of the component's variables.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// The value of a component variable, if it has one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Replaces (or adds) a variable's value: how `--database-url` reaches a component.
    pub fn set(&mut self, name: &str, value: String) {
        self.values.insert(name.to_string(), value);
    }

    /// Takes a variable away: on this host a component does not see another service's database.
    pub fn remove(&mut self, name: &str) {
        self.values.remove(name);
    }

    /// The id of the component these are the variables of.
    pub fn component(&self) -> &str {
        &self.component
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decls() -> BTreeMap<String, VariableDecl> {
        let mut decls = BTreeMap::new();
        decls.insert(
            "jwt_secret".to_string(),
            VariableDecl {
                required: true,
                secret: true,
                ..Default::default()
            },
        );
        decls.insert(
            "products_database".to_string(),
            VariableDecl {
                default: Some("products".to_string()),
                ..Default::default()
            },
        );
        decls
    }

    #[test]
    fn env_overrides_default_and_fills_required() {
        let app = AppVariables::resolve(&decls(), |name| match name {
            "SPIN_VARIABLE_JWT_SECRET" => Some("s3cret".to_string()),
            "SPIN_VARIABLE_PRODUCTS_DATABASE" => Some("postgres://db/x".to_string()),
            _ => None,
        })
        .unwrap();
        assert_eq!(app.expand("{{ jwt_secret }}").unwrap(), "s3cret");
        assert_eq!(
            app.expand("url={{products_database}}!").unwrap(),
            "url=postgres://db/x!"
        );
    }

    #[test]
    fn missing_required_variable_names_the_env_var() {
        let err = AppVariables::resolve(&decls(), |_| None).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`jwt_secret`"), "{msg}");
        assert!(msg.contains("SPIN_VARIABLE_JWT_SECRET"), "{msg}");
    }

    #[test]
    fn templates_expand_and_fail_clearly() {
        let app = AppVariables::resolve(&decls(), |_| Some("x".to_string())).unwrap();
        assert_eq!(app.expand("plain").unwrap(), "plain");
        assert_eq!(app.expand("{{ jwt_secret }}{{jwt_secret}}").unwrap(), "xx");
        assert!(app.expand("{{ nope }}").is_err());
        assert!(app.expand("{{ jwt_secret").is_err());
    }
}
