//! The plan of the links: which component exports each interface the others import, checked
//! at load so that a type mismatch stops the host instead of trapping at call time.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use wasmtime::component::types::{ComponentInstance, ComponentItem};
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::links::types::{func_mismatch, render_func};

/// The namespaces of the interfaces the host itself provides (WASI, Spin's interfaces). An
/// import in any other namespace is linked to the component that exports it.
const HOST_NAMESPACES: &[&str] = &["wasi:", "spin:", "fermyon:"];

/// Interfaces meant for the host alone: a component may export them (the host calls them
/// itself, as `shop createsuperuser` calls `shop:accounts/admin`), but no import of another
/// component is ever linked to them, declared or not.
const HOST_ONLY_INTERFACES: &[&str] = &["shop:accounts/admin"];

/// Whether `interface` (with or without its version) is one only the host may call.
pub fn is_host_only(interface: &str) -> bool {
    let name = interface
        .split_once('@')
        .map_or(interface, |(name, _)| name);
    HOST_ONLY_INTERFACES.contains(&name)
}

/// Which imports a component may have linked: `declared(importer, interface)` says whether the
/// importer's `[component.<id>.dependencies]` in the manifest names the interface (or its
/// package), as Spin requires before it satisfies an import.
pub type Declared<'a> = &'a dyn Fn(&str, &str) -> bool;

/// What the host provides, for error messages.
pub const HOST_PROVIDES: &str = "WASI 0.2, wasi:http, spin:sqlite/sqlite@3.0.0, \
                                 spin:postgres/postgres@4.0.0 and fermyon:spin/variables@2.0.0";

/// How deep calls through links may nest (orders -> cart -> products is 2): a deeper chain is
/// a cycle between components, which would otherwise take instance slots until none is left.
pub const MAX_LINK_DEPTH: u32 = 4;

/// Whether imports named `name` are the host's to provide, rather than another component's.
pub fn is_host_interface(name: &str) -> bool {
    HOST_NAMESPACES.iter().any(|ns| name.starts_with(ns))
}

/// One linked interface: the component that exports it and those that import it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The interface's name, e.g. `shop:cart/carts@0.1.0`.
    pub interface: String,
    /// The index (in the list given to [`plan`]) of the one component that exports it.
    pub exporter: usize,
    /// The indices of the components that import it.
    pub importers: Vec<usize>,
    /// The functions of the interface, as the exporter has them.
    pub functions: Vec<String>,
}

/// Checks every component's imports against the exports of the others and returns the links,
/// by interface: every import the host does not provide must be declared by its importer
/// (`declared`), must not be one only the host calls, and must be exported by exactly one
/// component, as an interface whose functions have the types the importer expects. A component
/// thus reaches only the other services its manifest entry says it calls.
///
/// `components` are `(id, component)` pairs; each error names the component and the import.
pub fn plan(
    engine: &Engine,
    components: &[(&str, &Component)],
    declared: Declared<'_>,
) -> Result<Vec<Link>> {
    let types: Vec<_> = components.iter().map(|(_, c)| c.component_type()).collect();

    let mut exporters: BTreeMap<String, Vec<(usize, ComponentInstance)>> = BTreeMap::new();
    for (index, ty) in types.iter().enumerate() {
        for (name, item) in ty.exports(engine) {
            if let ComponentItem::ComponentInstance(instance) = item.ty {
                if !is_host_interface(name) {
                    exporters
                        .entry(name.to_string())
                        .or_default()
                        .push((index, instance));
                }
            }
        }
    }

    let mut links: BTreeMap<String, Link> = BTreeMap::new();
    for (index, ty) in types.iter().enumerate() {
        let id = components[index].0;
        for (name, item) in ty.imports(engine) {
            if is_host_interface(name) {
                continue;
            }
            if is_host_only(name) {
                bail!(
                    "component `{id}` imports {name}, which only the host may call (it is not \
                     offered to components): rebuild `{id}` without that import"
                );
            }
            if !declared(id, name) {
                bail!(
                    "component `{id}` imports {name}, which its manifest entry does not declare: \
                     a component reaches only the services listed in \
                     [component.{id}.dependencies] (add `\"{name}\" = {{ path = \"...\" }}` there \
                     if `{id}` is meant to call it, or rebuild `{id}` without that import)"
                );
            }
            let (exporter, exported) = match exporters.get(name).map(Vec::as_slice) {
                None | Some([]) => bail!(
                    "component `{id}` imports {name}, which no component of the app exports \
                     (and the host does not provide it: it provides {HOST_PROVIDES}); add the \
                     component that exports {name} to the manifest, or rebuild `{id}` without \
                     that import"
                ),
                Some([(exporter, exported)]) => (*exporter, exported),
                Some([(a, _), (b, _), ..]) => bail!(
                    "component `{id}` imports {name}, which components `{}` and `{}` both \
                     export; an interface must have one owner: remove it from one of them",
                    components[*a].0,
                    components[*b].0
                ),
            };
            let ComponentItem::ComponentInstance(imported) = item.ty else {
                bail!(
                    "component `{id}` imports `{name}` as a {}; only interfaces can be linked to \
                     another component's export",
                    item_kind(&item.ty)
                );
            };
            let exporter_id = components[exporter].0;
            check_interface(engine, id, name, &imported, exporter_id, exported)?;
            let link = links.entry(name.to_string()).or_insert_with(|| Link {
                interface: name.to_string(),
                exporter,
                importers: Vec::new(),
                functions: exported
                    .exports(engine)
                    .filter_map(|(f, item)| {
                        matches!(item.ty, ComponentItem::ComponentFunc(_)).then(|| f.to_string())
                    })
                    .collect(),
            });
            link.importers.push(index);
        }
    }
    Ok(links.into_values().collect())
}

/// Checks that `exported` (by `exporter`) has every function `importer` imports from
/// `interface`, with the same types.
fn check_interface(
    engine: &Engine,
    importer: &str,
    interface: &str,
    imported: &ComponentInstance,
    exporter: &str,
    exported: &ComponentInstance,
) -> Result<()> {
    let rebuild = "rebuild both against the same WIT file";
    for (name, item) in imported.exports(engine) {
        match item.ty {
            ComponentItem::ComponentFunc(wanted) => {
                let Some(ComponentItem::ComponentFunc(offered)) =
                    exported.get_export(engine, name).map(|e| e.ty)
                else {
                    bail!(
                        "component `{importer}` imports `{name}` of {interface}, which component \
                         `{exporter}` does not export: {rebuild}"
                    );
                };
                if let Some(why) = func_mismatch(&wanted, &offered) {
                    bail!(
                        "component `{importer}` imports `{name}: {}` of {interface}, but component \
                         `{exporter}` exports `{name}: {}` ({why}): {rebuild}",
                        render_func(&wanted),
                        render_func(&offered)
                    );
                }
            }
            // Named types need no definition: functions carry their structure.
            ComponentItem::Type(_) => {}
            other => bail!(
                "component `{importer}` imports {interface} with a {} `{name}`; only functions \
                 of plain values can be linked between components",
                item_kind(&other)
            ),
        }
    }
    Ok(())
}

fn item_kind(item: &ComponentItem) -> &'static str {
    match item {
        ComponentItem::ComponentFunc(_) => "function",
        ComponentItem::CoreFunc(_) => "core function",
        ComponentItem::Module(_) => "core module",
        ComponentItem::Component(_) => "component",
        ComponentItem::ComponentInstance(_) => "instance",
        ComponentItem::Type(_) => "type",
        ComponentItem::Resource(_) => "resource",
    }
}

/// Whether the key of a Spin `[component.x.dependencies]` entry covers `interface`: the same
/// interface (`pkg:name/iface@1.0.0`, version optional) or its whole package (`pkg:name@1.0.0`).
pub fn dependency_covers(key: &str, interface: &str) -> bool {
    let split = |s: &str| match s.split_once('@') {
        Some((name, version)) => (name.to_string(), Some(version.to_string())),
        None => (s.to_string(), None),
    };
    let (key_name, key_version) = split(key);
    let (name, version) = split(interface);
    let package = name.split_once('/').map_or(name.as_str(), |(p, _)| p);
    let versions_agree = match (&key_version, &version) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    (key_name == name || key_name == package) && versions_agree
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::test_components::*;

    /// Every import declared: the checks other than the manifest's.
    const ANY: Declared<'static> = &|_, _| true;

    #[test]
    fn an_undeclared_or_host_only_import_is_refused() {
        let engine = Engine::default();
        let p = exporter(&engine, &["get"]);
        let c = importer(&engine, "shop:p/i@0.1.0", GET);
        let only_c_declares = |importer: &str, iface: &str| {
            importer == "c" && dependency_covers("shop:p/i@0.1.0", iface)
        };
        assert!(plan(&engine, &[("p", &p), ("c", &c)], &only_c_declares).is_ok());
        let err = plan(&engine, &[("p", &p), ("d", &c)], &only_c_declares)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "component `d` imports shop:p/i@0.1.0, which its manifest entry does not declare"
            ),
            "{err}"
        );
        let admin = importer(&engine, "shop:accounts/admin@0.1.0", GET);
        let err = plan(&engine, &[("docs", &admin)], ANY)
            .unwrap_err()
            .to_string();
        assert!(err.contains("which only the host may call"), "{err}");
        assert!(is_host_only("shop:accounts/admin@0.1.0"));
        assert!(!is_host_only("shop:accounts/profiles@0.1.0"));
    }

    #[test]
    fn classifies_imports() {
        for host in [
            "wasi:http/types@0.2.6",
            "wasi:cli/environment@0.2.0",
            "spin:sqlite/sqlite@3.0.0",
            "spin:postgres/postgres@4.0.0",
            "fermyon:spin/variables@2.0.0",
        ] {
            assert!(is_host_interface(host), "{host}");
        }
        for linked in ["shop:cart/carts@0.1.0", "acme:nothing/here@1.0.0", "f"] {
            assert!(!is_host_interface(linked), "{linked}");
        }
    }

    #[test]
    fn links_an_import_to_its_one_exporter() {
        let engine = Engine::default();
        let p = exporter(&engine, &["get", "put"]);
        let c = importer(&engine, "shop:p/i@0.1.0", GET);
        let links = plan(&engine, &[("p", &p), ("c", &c)], ANY).unwrap();
        assert_eq!(
            links,
            vec![Link {
                interface: "shop:p/i@0.1.0".into(),
                exporter: 0,
                importers: vec![1],
                functions: vec!["get".into(), "put".into()],
            }]
        );
    }

    #[test]
    fn an_unexported_import_is_named() {
        let engine = Engine::default();
        let c = importer(&engine, "shop:cart/carts@0.1.0", GET);
        let err = plan(&engine, &[("orders", &c)], ANY)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "component `orders` imports shop:cart/carts@0.1.0, which no component of the app exports"
            ),
            "{err}"
        );
        let odd = importer(&engine, "acme:nothing/here@1.0.0", "");
        let err = plan(&engine, &[("odd", &odd)], ANY)
            .unwrap_err()
            .to_string();
        assert!(err.contains("acme:nothing/here@1.0.0"), "{err}");
        assert!(err.contains("does not provide"), "{err}");
    }

    #[test]
    fn two_exporters_are_refused() {
        let engine = Engine::default();
        let p = exporter(&engine, &["get"]);
        let c = importer(&engine, "shop:p/i@0.1.0", GET);
        let err = plan(&engine, &[("a", &p), ("b", &p), ("c", &c)], ANY)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`a` and `b` both export"), "{err}");
        // Nobody imports it: no link, no error.
        assert!(plan(&engine, &[("a", &p), ("b", &p)], ANY)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_missing_or_different_function_is_refused() {
        let engine = Engine::default();
        let p = exporter(&engine, &["get"]);
        let c = importer(&engine, "shop:p/i@0.1.0", PUT);
        let err = plan(&engine, &[("p", &p), ("c", &c)], ANY)
            .unwrap_err()
            .to_string();
        assert!(err.contains("component `c` imports `put`"), "{err}");
        assert!(err.contains("`p` does not export"), "{err}");

        let c = importer(
            &engine,
            "shop:p/i@0.1.0",
            r#"(export "get" (func (param "id" u64) (result s64)))"#,
        );
        let err = plan(&engine, &[("p", &p), ("c", &c)], ANY)
            .unwrap_err()
            .to_string();
        assert!(err.contains("imports `get: func(id: u64) -> s64`"), "{err}");
        assert!(err.contains("exports `get: func(id: s64) -> s64`"), "{err}");
        assert!(err.contains("`u64` here, `s64` there"), "{err}");
    }

    #[test]
    fn a_bare_function_import_is_refused() {
        let engine = Engine::default();
        let c = component(&engine, r#"(component (import "f" (func)))"#);
        let p = exporter(&engine, &["get"]);
        let err = plan(&engine, &[("c", &c)], ANY).unwrap_err().to_string();
        assert!(err.contains("imports f, which no component"), "{err}");
        let err = plan(&engine, &[("c", &c), ("p", &p)], ANY)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no component of the app exports"), "{err}");
    }

    #[test]
    fn spin_dependency_keys() {
        let iface = "shop:cart/carts@0.1.0";
        assert!(dependency_covers("shop:cart/carts@0.1.0", iface));
        assert!(dependency_covers("shop:cart/carts", iface));
        assert!(dependency_covers("shop:cart@0.1.0", iface));
        assert!(dependency_covers("shop:cart", iface));
        assert!(!dependency_covers("shop:cart/other@0.1.0", iface));
        assert!(!dependency_covers("shop:cart@0.2.0", iface));
        assert!(!dependency_covers("shop:products@0.1.0", iface));
    }
}
