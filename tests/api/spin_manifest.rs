//! spin.toml as Spin 4 loads it. The shop host is lenient where Spin is not: it links every
//! `shop:*` import to the app component that exports it and runs each provider with its own
//! configuration. Under `spin up` a component's imports are filled only by the dependencies it
//! lists (whose own imports only the host fills), and with `dependencies_inherit_configuration`
//! their code runs with the importer's variables and databases. These tests read the built
//! components and fail when one would not start, or would fail its requests, under Spin.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use toml::{Table, Value};
use wasmparser::{Encoding, Parser, Payload};

use crate::helpers::{build_components, repo_root};

/// The label of the SQLite database Spin provides without any runtime config.
const SPIN_DEFAULT_DATABASE: &str = "default";

/// Variables whose names are in a service's code but which none of its WIT exports reads, by
/// service. The scan sees a dependency's whole code, its HTTP routes included, yet under Spin
/// only the imported interfaces are reachable in a dependency (or in a service composed into
/// one). accounts' `profiles` (orders' default address) and `sessions` (the token check of
/// cart, orders and products' staff routes) read only `accounts_database`; the signing key and
/// the token lifetimes serve accounts' own routes, and giving them to the others would break
/// "accounts alone signs".
const UNREACHED_THROUGH: &[(&str, &[&str])] = &[(
    "accounts",
    &[
        "jwt_private_key",
        "access_token_minutes",
        "refresh_token_days",
    ],
)];

/// The variables [`UNREACHED_THROUGH`] exempts in a dependency that holds `services`' code.
fn unreached_through(services: &[&Service]) -> Vec<&'static str> {
    UNREACHED_THROUGH
        .iter()
        .filter(|(name, _)| services.iter().any(|service| service.name == *name))
        .flat_map(|(_, variables)| variables.iter().copied())
        .collect()
}

/// A Spin manifest (version 2), as far as these checks read it.
#[derive(Deserialize)]
struct Manifest {
    spin_manifest_version: i64,
    #[serde(default)]
    variables: BTreeMap<String, AppVariable>,
    #[serde(default)]
    trigger: Triggers,
    #[serde(default)]
    component: BTreeMap<String, Component>,
}

/// One `[variables]` entry.
#[derive(Deserialize)]
struct AppVariable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
}

#[derive(Default, Deserialize)]
struct Triggers {
    #[serde(default)]
    http: Vec<HttpTrigger>,
}

/// One `[[trigger.http]]`: `route` is a path or `{ private = true }`.
#[derive(Deserialize)]
struct HttpTrigger {
    route: Value,
    component: String,
}

/// One `[component.<id>]`.
#[derive(Deserialize)]
struct Component {
    /// A local path, or a `{ url, digest }` table.
    source: Option<Value>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    /// By interface (`ns:pkg/iface@1.0.0`) or package (`ns:pkg@1.0.0`) name.
    #[serde(default)]
    dependencies: BTreeMap<String, Value>,
    #[serde(default)]
    dependencies_inherit_configuration: bool,
}

impl Component {
    /// The local file of its source, if it is one.
    fn source_path(&self) -> Option<&str> {
        self.source.as_ref().and_then(Value::as_str)
    }

    /// Each dependency's name, local path (if it has one) and the export it asks for.
    fn dependencies(&self) -> impl Iterator<Item = (&str, Option<&str>, &str)> {
        self.dependencies.iter().map(|(name, spec)| {
            let field = |key: &str| spec.get(key).and_then(Value::as_str);
            (
                name.as_str(),
                field("path"),
                field("export").unwrap_or(name),
            )
        })
    }
}

/// A built component: its top-level imports and exports, and its bytes for the scans.
struct ComponentFile {
    bytes: Vec<u8>,
    imports: BTreeSet<String>,
    exports: BTreeSet<String>,
}

/// Reads a component's top-level import and export names, skipping the modules and components
/// nested in it (a composition holds whole components, whose imports are filled inside).
fn read_component(path: &Path) -> Result<ComponentFile, String> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist".to_string(),
        _ => format!("cannot be read ({e})"),
    })?;
    let mut imports = BTreeSet::new();
    let mut exports = BTreeSet::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(&bytes) {
        let payload = payload.map_err(|e| format!("is not valid Wasm ({e})"))?;
        match payload {
            Payload::Version { encoding, .. } if depth == 0 && encoding != Encoding::Component => {
                return Err("is a core Wasm module, not a component".into());
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| format!("has a bad import ({e})"))?;
                    imports.insert(import.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| format!("has a bad export ({e})"))?;
                    exports.insert(export.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(ComponentFile {
        bytes,
        imports,
        exports,
    })
}

/// Whether `needle` occurs anywhere in `bytes`.
fn holds(bytes: &[u8], needle: &str) -> bool {
    let Some((&first, rest)) = needle.as_bytes().split_first() else {
        return true;
    };
    // Comparing only where the first byte matches keeps the scans of a few MB quick.
    bytes
        .iter()
        .enumerate()
        .any(|(at, &byte)| byte == first && bytes[at + 1..].starts_with(rest))
}

/// A service crate: its `SERVICE` name and its folder (`components/<dir>`).
struct Service {
    name: String,
    dir: String,
}

/// The services of the repository: each crate of components/ whose lib.rs declares
/// `pub const SERVICE: &str = "<name>"` (its database variable is `<name>_database`).
fn services(root: &Path) -> Vec<Service> {
    let mut services = Vec::new();
    let crates = std::fs::read_dir(root.join("components")).expect("list components/");
    for entry in crates {
        let dir = entry.expect("read components/").file_name();
        let dir = dir.to_string_lossy();
        let Ok(lib) =
            std::fs::read_to_string(root.join("components").join(&*dir).join("src/lib.rs"))
        else {
            continue;
        };
        let name = lib.lines().find_map(|line| {
            let rest = line.trim().strip_prefix("pub const SERVICE: &str = \"")?;
            Some(rest.split_once('"')?.0.to_string())
        });
        if let Some(name) = name {
            services.push(Service {
                name,
                dir: format!("components/{dir}"),
            });
        }
    }
    services.sort_by(|a, b| a.name.cmp(&b.name));
    services
}

/// The services whose code is in `bytes`. The `<service>_database` name is built at run time,
/// so its text is not there, and the service's name is a common word (a route, a table); but
/// rustc keeps the workspace-relative source path of every panic location, so a service's
/// crate leaves `components/<dir>/src/` in each component its code is in, compositions
/// included. `each_service_is_found_in_its_own_build_only` fails if that stops holding.
fn services_in<'s>(bytes: &[u8], services: &'s [Service]) -> Vec<&'s Service> {
    services
        .iter()
        .filter(|service| holds(bytes, &format!("{}/src/", service.dir)))
        .collect()
}

/// Whether Spin's host provides an import itself (a dependency may import nothing else).
fn host_provides(name: &str) -> bool {
    name.starts_with("wasi:") || name.starts_with("fermyon:spin/") || name.starts_with("spin:")
}

/// Whether the import `name` is what dependency `key` names: that interface, or, for a package
/// key (`ns:pkg@1.0.0`), any interface of that package at that version.
fn dependency_covers(key: &str, name: &str) -> bool {
    if key.contains('/') {
        return key == name;
    }
    let (package, version) = key.split_once('@').unwrap_or((key, ""));
    let Some((name_package, rest)) = name.split_once('/') else {
        return false;
    };
    let name_version = rest.split_once('@').map_or("", |(_, version)| version);
    name_package == package && name_version == version
}

/// The names of the `{{ name }}` templates in `text`.
fn template_names(text: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            return Err(format!("`{text}` opens a `{{{{` it does not close"));
        };
        names.push(rest[start + 2..start + end].trim().to_string());
        rest = &rest[start + end + 2..];
    }
    Ok(names)
}

/// `text` with its templates replaced by the app variables' defaults; `None` when one has no
/// default (its value is known only at run time).
fn render(text: &str, variables: &BTreeMap<String, AppVariable>) -> Option<String> {
    let mut rendered = text.to_string();
    for name in template_names(text).ok()? {
        let value = variables.get(&name)?.default.as_deref()?;
        let start = rendered.find("{{")?;
        let end = start + rendered[start..].find("}}")? + 2;
        rendered.replace_range(start..end, value);
    }
    Some(rendered)
}

/// Whether Spin accepts `name` as a variable name: lower-case letters, digits and `_`,
/// starting with a letter.
fn valid_variable_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Every reason the app of `manifest` would not start, or would fail requests, under Spin 4,
/// each naming the component and the fix. Component files are read under `root`;
/// `runtime_config` is the runtime-config.toml `spin up` is given.
fn spin_problems(manifest: &Table, runtime_config: &Table, root: &Path) -> Vec<String> {
    let app: Manifest = match Value::Table(manifest.clone()).try_into() {
        Ok(app) => app,
        Err(e) => {
            return vec![format!(
                "spin.toml is not a Spin manifest Spin can read: {e}"
            )]
        }
    };
    if app.spin_manifest_version != 2 {
        return vec![format!(
            "spin.toml: spin_manifest_version is {}; Spin 4 reads version 2",
            app.spin_manifest_version
        )];
    }
    let mut files = BTreeMap::new();
    for component in app.component.values() {
        let dependencies = component.dependencies().filter_map(|(_, path, _)| path);
        for path in component.source_path().into_iter().chain(dependencies) {
            files
                .entry(path.to_string())
                .or_insert_with(|| read_component(&root.join(path)));
        }
    }
    let services = services(root);
    let mut problems = Vec::new();
    problems.extend(wiring_problems(&app, &files));
    problems.extend(configuration_problems(
        &app,
        &files,
        &services,
        runtime_config,
    ));
    problems.extend(route_problems(&app));
    problems
}

/// The component files of an app, by their path in the manifest.
type Files = BTreeMap<String, Result<ComponentFile, String>>;

/// Sources that are components; dependencies that exist, export what they are named for, are
/// imported, and import only what Spin's host provides; every other import of a component
/// filled by one of its dependencies.
fn wiring_problems(app: &Manifest, files: &Files) -> Vec<String> {
    let mut problems = Vec::new();
    for (id, component) in &app.component {
        let Some(source) = component.source_path() else {
            problems.push(format!(
                "component `{id}`: its source must be a local file path (this check reads the built files)"
            ));
            continue;
        };
        let importer = match &files[source] {
            Ok(file) => Some(file),
            Err(why) => {
                problems.push(format!(
                    "component `{id}`: its source {source} {why}; build it (`shop build` or `spin build`) or fix `source`"
                ));
                None
            }
        };
        for (name, path, export) in component.dependencies() {
            let Some(path) = path else {
                problems.push(format!(
                    "component `{id}`: dependency `{name}` is not a local `path`; this check (and `shop up`) read local files only"
                ));
                continue;
            };
            let dependency = match &files[path] {
                Ok(file) => file,
                Err(why) => {
                    problems.push(format!(
                        "component `{id}`: dependency `{name}` = {{ path = \"{path}\" }}: the file {why}; build it (`shop build` makes every dependency file) or fix the path"
                    ));
                    continue;
                }
            };
            let wanted: Vec<&str> = match importer {
                Some(importer) if name.contains('/') || export != name => {
                    if !importer.imports.contains(name) {
                        problems.push(format!(
                            "component `{id}` does not import `{name}`, yet lists it in [component.{id}.dependencies]: remove the entry or fix its name"
                        ));
                    }
                    vec![export]
                }
                Some(importer) => {
                    let covered: Vec<&str> = importer
                        .imports
                        .iter()
                        .map(String::as_str)
                        .filter(|import| dependency_covers(name, import))
                        .collect();
                    if covered.is_empty() {
                        problems.push(format!(
                            "component `{id}` imports nothing of package `{name}`, yet lists it in [component.{id}.dependencies]: remove the entry or fix its name"
                        ));
                    }
                    covered
                }
                None => vec![export],
            };
            for interface in wanted {
                if !dependency.exports.contains(interface) {
                    problems.push(format!(
                        "component `{id}`: dependency `{name}` points at {path}, which does not export `{interface}` (it exports {}); point it at the component that does",
                        list(&dependency.exports)
                    ));
                }
            }
            for import in dependency.imports.iter().filter(|i| !host_provides(i)) {
                problems.push(format!(
                    "component `{id}`: dependency `{name}` ({path}) itself imports `{import}`, and Spin's composer does not fill a dependency's imports from other dependencies: point it at a build with that import composed in (as cart-with-products.wasm is cart with products)"
                ));
            }
        }
        let Some(importer) = importer else { continue };
        for import in importer.imports.iter().filter(|i| !host_provides(i)) {
            let filled = component
                .dependencies()
                .any(|(name, _, _)| dependency_covers(name, import));
            if !filled {
                let provider = app
                    .component
                    .values()
                    .filter_map(Component::source_path)
                    .find(|path| matches!(&files[*path], Ok(f) if f.exports.contains(import)))
                    .unwrap_or("<the component that exports it>");
                problems.push(format!(
                    "component `{id}` imports `{import}`, which Spin's host does not provide and none of its dependencies fills: add `\"{import}\" = {{ path = \"{provider}\" }}` to [component.{id}.dependencies]"
                ));
            }
        }
    }
    problems
}

/// App variables Spin accepts; templates that name them; every variable and database the code
/// of a component (its own and its dependencies') reads, given to that component.
fn configuration_problems(
    app: &Manifest,
    files: &Files,
    services: &[Service],
    runtime_config: &Table,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, variable) in &app.variables {
        if !valid_variable_name(name) {
            problems.push(format!(
                "variable `{name}`: Spin accepts only lower-case letters, digits and `_` (starting with a letter); rename it"
            ));
        }
        match (variable.required, &variable.default) {
            (true, Some(_)) => problems.push(format!(
                "variable `{name}` is both required and has a default, which Spin refuses: drop one"
            )),
            (false, None) => problems.push(format!(
                "variable `{name}` has neither a default nor `required = true`: give it one (a required one is set with SPIN_VARIABLE_{})",
                name.to_uppercase()
            )),
            _ => {}
        }
    }
    let declared: BTreeSet<&str> = runtime_config
        .get("sqlite_database")
        .and_then(Value::as_table)
        .map(|labels| labels.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for (id, component) in &app.component {
        let templates = component
            .variables
            .iter()
            .map(|(key, value)| (format!("variables.{key}"), value))
            .chain(
                component
                    .allowed_outbound_hosts
                    .iter()
                    .map(|host| ("allowed_outbound_hosts".to_string(), host)),
            );
        for (place, text) in templates {
            match template_names(text) {
                Err(why) => problems.push(format!("component `{id}`: {place}: {why}")),
                Ok(names) => {
                    for name in names.iter().filter(|n| !app.variables.contains_key(*n)) {
                        problems.push(format!(
                            "component `{id}`: {place} uses `{{{{ {name} }}}}`, which names no [variables] entry: declare it or fix the name"
                        ));
                    }
                }
            }
        }
        for key in component.variables.keys() {
            if !valid_variable_name(key) {
                problems.push(format!(
                    "component `{id}`: variable `{key}`: Spin accepts only lower-case letters, digits and `_` (starting with a letter); rename it"
                ));
            }
        }
        for label in &component.sqlite_databases {
            if label != SPIN_DEFAULT_DATABASE && !declared.contains(label.as_str()) {
                problems.push(format!(
                    "component `{id}`: SQLite database `{label}` is declared in no [sqlite_database.{label}] of runtime-config.toml, so Spin refuses to start: declare it"
                ));
            }
        }

        // What the code in the component reads: each app variable whose name is in its bytes,
        // and the database variable of each service whose code it holds. A dependency is
        // reached only through the interface it is named for, hence `UNREACHED_THROUGH`.
        let dependencies = component
            .dependencies()
            .filter_map(|(_, path, export)| Some((path?, Some(export))));
        let code = component.source_path().map(|path| (path, None));
        let mut reads: BTreeMap<String, &str> = BTreeMap::new();
        let mut services_read = BTreeSet::new();
        let mut dependencies_read_configuration = false;
        for (path, interface) in code.into_iter().chain(dependencies) {
            let Ok(file) = &files[path] else { continue };
            let held = services_in(&file.bytes, services);
            let unreached = match interface {
                Some(_) => unreached_through(&held),
                None => Vec::new(),
            };
            for name in unreached.iter().filter(|name| !holds(&file.bytes, name)) {
                problems.push(format!(
                    "UNREACHED_THROUGH (tests/api/spin_manifest.rs) exempts `{name}` in the services {path} holds, but it no longer holds it: remove the exemption"
                ));
            }
            let mut found: Vec<String> = app
                .variables
                .keys()
                .filter(|name| holds(&file.bytes, name) && !unreached.contains(&name.as_str()))
                .cloned()
                .collect();
            for service in held {
                found.push(format!("{}_database", service.name));
                services_read.insert(service.name.as_str());
            }
            dependencies_read_configuration |= interface.is_some() && !found.is_empty();
            for name in found {
                reads.entry(name).or_insert(path);
            }
        }
        if dependencies_read_configuration && !component.dependencies_inherit_configuration {
            problems.push(format!(
                "component `{id}`: its dependencies read variables or databases, which under Spin they get only from it with `dependencies_inherit_configuration = true`: set it"
            ));
        }
        for (variable, found_in) in &reads {
            if !component.variables.contains_key(variable) {
                problems.push(format!(
                    "component `{id}`: the code of {found_in} reads variable `{variable}`, which [component.{id}.variables] lacks: add `{variable} = \"{{{{ {variable} }}}}\"`"
                ));
            }
        }
        for service in services_read {
            let variable = format!("{service}_database");
            let Some(value) = component.variables.get(&variable) else {
                continue;
            };
            let Some(label) = render(value, &app.variables) else {
                continue;
            };
            if shop_database_address::is_postgres_url(&label) {
                continue;
            }
            if !component.sqlite_databases.contains(&label) {
                problems.push(format!(
                    "component `{id}` holds {service}'s code, whose `{variable}` is the SQLite label \"{label}\" by default, not in its sqlite_databases: add \"{label}\" to [component.{id}] sqlite_databases"
                ));
            }
            if label != SPIN_DEFAULT_DATABASE && !declared.contains(label.as_str()) {
                problems.push(format!(
                    "component `{id}`: `{variable}` is the SQLite label \"{label}\", which runtime-config.toml does not declare: add [sqlite_database.{label}]"
                ));
            }
        }
    }
    problems
}

/// Routes to components that exist, none twice, a catch-all `/...` (the contract's JSON 404
/// for unknown paths), and every component served by some route.
fn route_problems(app: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    let mut served = BTreeSet::new();
    let mut catch_all = false;
    for trigger in &app.trigger.http {
        let component = &trigger.component;
        served.insert(component.as_str());
        if !app.component.contains_key(component) {
            problems.push(format!(
                "[[trigger.http]] {} names component `{component}`, which has no [component.{component}]: declare it or fix the name",
                trigger.route
            ));
        }
        let Some(route) = trigger.route.as_str() else {
            continue;
        };
        catch_all |= route == "/...";
        let normalised = match route.trim_end_matches('/') {
            "" => "/",
            trimmed => trimmed,
        };
        if !seen.insert(normalised.to_string()) {
            problems.push(format!(
                "route `{route}` (to `{component}`) is declared twice, which Spin refuses: remove one"
            ));
        }
    }
    if !catch_all {
        problems.push(
            "no [[trigger.http]] has route \"/...\": unknown paths would not get the contract's JSON 404; route \"/...\" to docs".into(),
        );
    }
    for (id, component) in &app.component {
        if component.source.is_some() && !served.contains(id.as_str()) {
            problems.push(format!(
                "component `{id}` has a source but no [[trigger.http]] serves it: route to it or remove it"
            ));
        }
    }
    problems
}

/// `names` as a readable list.
fn list(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        return "nothing".into();
    }
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    quoted.join(", ")
}

/// A TOML file of the repository.
fn repo_toml(name: &str) -> Table {
    let path = repo_root().join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    toml::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// The problems of `manifest`, against the built components and the real runtime-config.toml.
fn problems_of(manifest: &Table) -> Vec<String> {
    build_components();
    spin_problems(manifest, &repo_toml("runtime-config.toml"), &repo_root())
}

/// The `[component.<id>]` table of `manifest`.
fn component<'m>(manifest: &'m mut Table, id: &str) -> &'m mut Table {
    manifest["component"][id]
        .as_table_mut()
        .unwrap_or_else(|| panic!("spin.toml has no [component.{id}]"))
}

/// Asserts that `change` to the real spin.toml makes the checker report, among problems it did
/// not report before, one that contains every fragment of `expected`.
#[track_caller]
fn assert_reported(change: impl FnOnce(&mut Table), expected: &[&str]) {
    let mut manifest = repo_toml("spin.toml");
    let before = problems_of(&manifest);
    change(&mut manifest);
    let after = problems_of(&manifest);
    let new: Vec<&String> = after.iter().filter(|p| !before.contains(p)).collect();
    assert!(
        new.iter().any(|p| expected.iter().all(|f| p.contains(f))),
        "expected a new problem naming {expected:?}; new problems: {new:#?}"
    );
}

#[test]
fn spin_toml_would_start_under_spin() {
    let problems = problems_of(&repo_toml("spin.toml"));
    assert!(
        problems.is_empty(),
        "spin.toml would not start (or would fail requests) under Spin 4:\n- {}",
        problems.join("\n- ")
    );
}

#[test]
fn each_service_is_found_in_its_own_build_and_in_the_dependencies_that_hold_it() {
    build_components();
    let root = repo_root();
    let services = services(&root);
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["accounts", "cart", "orders", "products"]);
    let found_in = |file: &ComponentFile| -> BTreeSet<String> {
        services_in(&file.bytes, &services)
            .iter()
            .map(|s| s.name.clone())
            .collect()
    };
    let app: Manifest = Value::Table(repo_toml("spin.toml")).try_into().unwrap();
    let mut sources = BTreeMap::new();
    for (id, component) in &app.component {
        let source = component.source_path().unwrap();
        let file = read_component(&root.join(source))
            .unwrap_or_else(|why| panic!("component `{id}`: {source} {why}"));
        let own: BTreeSet<String> = names
            .iter()
            .filter(|n| *n == id)
            .map(|n| n.to_string())
            .collect();
        assert_eq!(found_in(&file), own, "services found in {source}");
        sources.insert(id.as_str(), file);
    }
    // A dependency holds the code of the component that exports what it is named for and, if
    // it is a composition, of each component that filled an import inside it.
    for (id, component) in &app.component {
        for (name, path, export) in component.dependencies() {
            let path = path.unwrap();
            let file = read_component(&root.join(path))
                .unwrap_or_else(|why| panic!("component `{id}`: dependency {path} {why}"));
            let mut holders = BTreeSet::new();
            let mut wanted = vec![export.to_string()];
            while let Some(interface) = wanted.pop() {
                for (provider, provided) in &sources {
                    if provided.exports.contains(&interface) && holders.insert(provider.to_string())
                    {
                        wanted.extend(
                            provided
                                .imports
                                .iter()
                                .filter(|i| !host_provides(i) && !file.imports.contains(*i))
                                .cloned(),
                        );
                    }
                }
            }
            holders.retain(|holder| names.contains(&holder.as_str()));
            assert_eq!(
                found_in(&file),
                holders,
                "services found in {path} (`{id}`'s `{name}`)"
            );
        }
    }
}

#[test]
fn a_dependency_file_that_does_not_exist_is_reported() {
    assert_reported(
        |manifest| {
            component(manifest, "cart")["dependencies"]["shop:products/catalogue@0.1.0"]["path"] =
                "target/wasm32-wasip2/release/no-such.wasm".into();
        },
        &["`cart`", "no-such.wasm", "does not exist"],
    );
}

#[test]
fn a_dependency_that_does_not_export_the_interface_is_reported() {
    assert_reported(
        |manifest| {
            component(manifest, "cart")["dependencies"]["shop:products/catalogue@0.1.0"]["path"] =
                "target/wasm32-wasip2/release/accounts.wasm".into();
        },
        &[
            "`cart`",
            "accounts.wasm",
            "does not export `shop:products/catalogue@0.1.0`",
        ],
    );
}

#[test]
fn a_dependency_with_its_own_shop_import_is_reported() {
    assert_reported(
        |manifest| {
            component(manifest, "orders")["dependencies"]["shop:cart/carts@0.1.0"]["path"] =
                "target/wasm32-wasip2/release/cart.wasm".into();
        },
        &[
            "`orders`",
            "cart.wasm",
            "itself imports `shop:products/catalogue@0.1.0`",
        ],
    );
}

#[test]
fn an_import_no_dependency_fills_is_reported() {
    assert_reported(
        |manifest| {
            component(manifest, "cart").remove("dependencies");
        },
        &[
            "`cart` imports `shop:products/catalogue@0.1.0`",
            "products.wasm",
        ],
    );
}

#[test]
fn a_database_missing_from_sqlite_databases_is_reported() {
    assert_reported(
        |manifest| {
            let databases = component(manifest, "cart")["sqlite_databases"]
                .as_array_mut()
                .unwrap();
            databases.retain(|label| label.as_str() != Some("products"));
        },
        &[
            "`cart`",
            "products_database",
            "\"products\"",
            "sqlite_databases",
        ],
    );
}

#[test]
fn a_variable_the_code_reads_but_the_component_lacks_is_reported() {
    assert_reported(
        |manifest| {
            component(manifest, "cart")["variables"]
                .as_table_mut()
                .unwrap()
                .remove("jwt_public_key");
        },
        &["`cart`", "reads variable `jwt_public_key`"],
    );
}

#[test]
fn a_route_to_a_missing_component_is_reported() {
    assert_reported(
        |manifest| {
            let mut trigger = Table::new();
            trigger.insert("route".into(), "/api/wishlists/...".into());
            trigger.insert("component".into(), "wishlists".into());
            manifest["trigger"]["http"]
                .as_array_mut()
                .unwrap()
                .push(trigger.into());
        },
        &["/api/wishlists/...", "`wishlists`"],
    );
}

#[test]
fn a_missing_catch_all_route_is_reported() {
    assert_reported(
        |manifest| {
            manifest["trigger"]["http"]
                .as_array_mut()
                .unwrap()
                .retain(|trigger| trigger["route"].as_str() != Some("/..."));
        },
        &["\"/...\"", "404"],
    );
}
