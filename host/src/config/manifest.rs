//! `spin.toml` (Spin manifest version 2) and `runtime-config.toml`, as far as the host uses them.
//!
//! Unknown keys are ignored, as Spin ignores keys of features it does not use, so the one
//! manifest keeps working under Spin and here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The application described by a `spin.toml`, with paths resolved against its directory.
#[derive(Debug)]
pub struct Manifest {
    /// Where the manifest was read from.
    pub path: PathBuf,
    /// The manifest's directory: component sources, build commands and migrations are relative to it.
    pub dir: PathBuf,
    /// The `[application]` name.
    pub name: String,
    /// The application variables, `[variables]`.
    pub variables: BTreeMap<String, VariableDecl>,
    /// The `[[trigger.http]]` entries, in manifest order.
    pub http_triggers: Vec<HttpTrigger>,
    /// The `[component.<id>]` tables, by id.
    pub components: BTreeMap<String, ComponentDecl>,
}

/// One application variable of `[variables]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    /// The value used when no provider (environment) gives one.
    pub default: Option<String>,
    /// Whether start-up fails when no value is found.
    #[serde(default)]
    pub required: bool,
    /// Whether the value is a secret: on a local run the host generates a missing one.
    #[serde(default)]
    pub secret: bool,
}

/// One `[[trigger.http]]` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct HttpTrigger {
    /// The route: `/exact/path` or `/prefix/...`; `{ private = true }` is parsed as `None`.
    #[serde(deserialize_with = "route_or_private")]
    pub route: Option<String>,
    /// The id of the component that serves the route.
    pub component: String,
}

/// One `[component.<id>]` table.
#[derive(Debug, Clone, Deserialize)]
pub struct ComponentDecl {
    /// The component's Wasm file, relative to the manifest's directory.
    pub source: String,
    /// The SQLite database labels the component may open.
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    /// The outbound hosts the component may reach (`postgres://host:port` patterns).
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Component variables: templates over the application variables.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Environment variables the component sees through WASI.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// How to build the component's source (`shop build`).
    pub build: Option<BuildDecl>,
    /// Spin's component dependencies: the components Spin composes into this one to satisfy
    /// its imports, by interface or package name (`"pkg:name/iface@1.0.0" = { path = "..." }`,
    /// or a registry or component reference). Parsed loosely: this host links an import to the
    /// component of the app that exports it, and only checks that Spin would find it too.
    #[serde(default)]
    pub dependencies: BTreeMap<String, toml::Value>,
    /// Whether, under Spin, the dependencies run with this component's configuration (its
    /// databases, variables); without it they get none. On this host each provider always runs
    /// with its own.
    #[serde(default)]
    pub dependencies_inherit_configuration: bool,
}

/// A component's `[component.<id>.build]` table.
#[derive(Debug, Clone, Deserialize)]
pub struct BuildDecl {
    /// The shell command that builds the component.
    pub command: String,
    /// The directory to run it in, relative to the manifest's directory.
    pub workdir: Option<String>,
}

/// The raw TOML shape of a manifest, before checks.
#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: Option<toml::Value>,
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, ComponentDecl>,
}

#[derive(Deserialize)]
struct RawApplication {
    name: String,
}

#[derive(Default, Deserialize)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<HttpTrigger>,
}

fn route_or_private<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Route {
        Path(String),
        Private { private: bool },
    }
    match Route::deserialize(d)? {
        Route::Path(path) => Ok(Some(path)),
        Route::Private { private: true } => Ok(None),
        Route::Private { private: false } => Err(serde::de::Error::custom(
            "a route table must be `{ private = true }`",
        )),
    }
}

impl Manifest {
    /// Reads and checks the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let text = std::fs::read_to_string(&path).map_err(|err| {
            if err.kind() == std::io::ErrorKind::NotFound {
                anyhow::anyhow!(
                    "no manifest at {}: run `shop up` in the app's directory or pass --manifest PATH",
                    path.display()
                )
            } else {
                anyhow::anyhow!("cannot read the manifest {}: {err}", path.display())
            }
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, path, dir)
    }

    /// Parses manifest text; `path` is only used in error messages and `dir` to resolve paths.
    pub fn parse(text: &str, path: PathBuf, dir: PathBuf) -> Result<Self> {
        let invalid = |msg: String| anyhow::anyhow!("invalid manifest {}: {msg}", path.display());
        let raw: RawManifest = toml::from_str(text).map_err(|err| invalid(err.to_string()))?;
        match raw.spin_manifest_version {
            Some(toml::Value::Integer(2)) => {}
            Some(toml::Value::String(ref v)) if v == "2" => {}
            other => {
                return Err(invalid(format!(
                    "`spin_manifest_version` must be 2, found {}",
                    other.map_or("nothing".to_string(), |v| v.to_string())
                )))
            }
        }
        for trigger in &raw.trigger.http {
            if !raw.component.contains_key(&trigger.component) {
                return Err(invalid(format!(
                    "trigger route {} names component `{}`, which has no [component.{}] table",
                    trigger.route.as_deref().unwrap_or("(private)"),
                    trigger.component,
                    trigger.component
                )));
            }
            if let Some(route) = &trigger.route {
                if !route.starts_with('/') {
                    return Err(invalid(format!("route `{route}` must start with `/`")));
                }
            }
        }
        if raw.trigger.http.is_empty() {
            return Err(invalid("it has no [[trigger.http]] entry".to_string()));
        }
        Ok(Self {
            path,
            dir,
            name: raw.application.name,
            variables: raw.variables,
            http_triggers: raw.trigger.http,
            components: raw.component,
        })
    }

    /// The absolute path of a component's Wasm file.
    pub fn source_path(&self, component: &ComponentDecl) -> PathBuf {
        self.dir.join(&component.source)
    }
}

/// What the host reads from a Spin `runtime-config.toml`: where each SQLite database lives.
#[derive(Debug, Default)]
pub struct RuntimeConfig {
    /// The file of each declared SQLite label, resolved against the working directory.
    pub sqlite_databases: BTreeMap<String, PathBuf>,
}

#[derive(Deserialize)]
struct RawRuntimeConfig {
    #[serde(default)]
    sqlite_database: BTreeMap<String, RawSqliteDatabase>,
}

#[derive(Deserialize)]
struct RawSqliteDatabase {
    #[serde(rename = "type")]
    kind: String,
    path: Option<PathBuf>,
}

impl RuntimeConfig {
    /// Reads a runtime config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the runtime config {}", path.display()))?;
        Self::parse(&text)
            .map_err(|err| anyhow::anyhow!("invalid runtime config {}: {err:#}", path.display()))
    }

    /// Parses runtime config text.
    pub fn parse(text: &str) -> Result<Self> {
        let raw: RawRuntimeConfig = toml::from_str(text)?;
        let mut sqlite_databases = BTreeMap::new();
        for (label, db) in raw.sqlite_database {
            if db.kind != "spin" {
                bail!(
                    "[sqlite_database.{label}] has type `{}`; this host supports only `spin` (a local file)",
                    db.kind
                );
            }
            let path = db.path.unwrap_or_else(|| default_sqlite_path(&label));
            sqlite_databases.insert(label, path);
        }
        Ok(Self { sqlite_databases })
    }

    /// The file of a SQLite label: the declared one, else `.shop/<label>.db`.
    pub fn sqlite_path(&self, label: &str) -> PathBuf {
        self.sqlite_databases
            .get(label)
            .cloned()
            .unwrap_or_else(|| default_sqlite_path(label))
    }
}

fn default_sqlite_path(label: &str) -> PathBuf {
    PathBuf::from(".shop").join(format!("{label}.db"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
spin_manifest_version = 2
[application]
name = "shop"
[variables]
jwt_secret = { required = true, secret = true }
products_database = { default = "products" }
[[trigger.http]]
route = "/api/products/..."
component = "products"
[[trigger.http]]
route = { private = true }
component = "products"
[component.products]
source = "target/products.wasm"
sqlite_databases = ["products"]
[component.products.variables]
database = "{{ products_database }}"
[component.products.build]
command = "cargo build"
watch = ["src/**/*.rs"]

[[trigger.http]]
route = "/api/carts/..."
component = "cart"
[component.cart]
source = "target/cart.wasm"
dependencies_inherit_configuration = true
[component.cart.dependencies]
"shop:products/catalogue@0.1.0" = { path = "target/products.wasm" }
"shop:accounts@0.1.0" = { registry = "example.com", package = "shop:accounts", version = "0.1.0" }
"shop:other/thing" = "1.2.3"
"#;

    #[test]
    fn parses_a_manifest() {
        let m = Manifest::parse(MANIFEST, "spin.toml".into(), "/app".into()).unwrap();
        assert_eq!(m.name, "shop");
        assert!(m.variables["jwt_secret"].required);
        assert_eq!(
            m.variables["products_database"].default.as_deref(),
            Some("products")
        );
        assert_eq!(
            m.http_triggers[0].route.as_deref(),
            Some("/api/products/...")
        );
        assert_eq!(m.http_triggers[1].route, None);
        let products = &m.components["products"];
        assert_eq!(
            m.source_path(products),
            PathBuf::from("/app/target/products.wasm")
        );
        assert_eq!(products.build.as_ref().unwrap().command, "cargo build");
        assert!(products.dependencies.is_empty());
        assert!(!products.dependencies_inherit_configuration);
    }

    #[test]
    fn accepts_spin_component_dependencies() {
        let m = Manifest::parse(MANIFEST, "spin.toml".into(), "/app".into()).unwrap();
        let cart = &m.components["cart"];
        assert!(cart.dependencies_inherit_configuration);
        let keys: Vec<&str> = cart.dependencies.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "shop:accounts@0.1.0",
                "shop:other/thing",
                "shop:products/catalogue@0.1.0"
            ]
        );
    }

    #[test]
    fn rejects_an_unknown_component() {
        let text = MANIFEST.replace("component = \"products\"", "component = \"nope\"");
        let err = Manifest::parse(&text, "spin.toml".into(), "/app".into()).unwrap_err();
        assert!(err.to_string().contains("`nope`"), "{err}");
    }

    #[test]
    fn parses_a_runtime_config() {
        let rc = RuntimeConfig::parse(
            "[sqlite_database.products]\ntype = \"spin\"\npath = \".shop/p.db\"\n",
        )
        .unwrap();
        assert_eq!(rc.sqlite_path("products"), PathBuf::from(".shop/p.db"));
        assert_eq!(rc.sqlite_path("other"), PathBuf::from(".shop/other.db"));
        assert!(RuntimeConfig::parse("[sqlite_database.x]\ntype = \"libsql\"\n").is_err());
    }
}
