//! Plugs components into a socket component with wasm-compose, and checks what comes out.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use wasm_compose::composer::ComponentComposer;
use wasm_compose::config::Config;
use wasmparser::{
    ComponentExternalKind, ComponentTypeRef, Parser, Payload, Validator, WasmFeatures,
};

/// A composed component and the socket's imports that the plugs filled.
#[derive(Debug)]
pub struct Composition {
    /// The bytes of the composed component.
    pub bytes: Vec<u8>,
    /// The names of the socket's instance imports that the plugs' exports now fill.
    pub filled: BTreeSet<String>,
}

/// Fills the instance imports of `socket` from the instance exports of `plugs` (by name; the
/// first plug that exports a name fills it), and checks the result: a valid component with the
/// socket's exports and none of the filled imports.
pub fn compose(socket: &Path, plugs: &[PathBuf]) -> Result<Composition> {
    if plugs.is_empty() {
        bail!("no plug to compose into `{}`", socket.display());
    }
    let socket_names = Names::read(socket, "socket")?;
    let mut filled = BTreeSet::new();
    for plug in plugs {
        let plug_names = Names::read(plug, "plug")?;
        let fills: BTreeSet<String> = socket_names
            .imports
            .intersection(&plug_names.exports)
            .cloned()
            .collect();
        if fills.is_empty() {
            bail!(
                "plug `{}` exports none of the instances socket `{}` imports (it exports {})",
                plug.display(),
                socket.display(),
                listed(&plug_names.exports),
            );
        }
        filled.extend(fills);
    }

    // Definitions are wasm-compose's plugs: each socket import is matched to their exports by
    // name, and what no plug exports stays an import of the composed component.
    let config = Config {
        definitions: plugs.to_vec(),
        ..Config::default()
    };
    let bytes = ComponentComposer::new(socket, &config)
        .compose()
        .with_context(|| format!("cannot compose socket `{}`", socket.display()))?;

    let composed = Names::parse(&bytes).context("the composed component is not valid")?;
    if let Some(left) = composed.imports.intersection(&filled).next() {
        bail!("the composed component still imports `{left}`, which a plug exports");
    }
    if composed.exports != socket_names.exports {
        bail!(
            "the composed component exports {}, not the socket's {}",
            listed(&composed.exports),
            listed(&socket_names.exports)
        );
    }
    Ok(Composition { bytes, filled })
}

/// The top-level instance imports and exports of a component.
#[derive(Debug)]
struct Names {
    imports: BTreeSet<String>,
    exports: BTreeSet<String>,
}

impl Names {
    /// Reads and validates the component file at `path`, the `role` it plays named in errors.
    fn read(path: &Path, role: &str) -> Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read {role} `{}`", path.display()))?;
        Self::parse(&bytes)
            .with_context(|| format!("{role} `{}` is not a valid component", path.display()))
    }

    /// Validates `bytes` as a component and collects its top-level instance imports and exports.
    fn parse(bytes: &[u8]) -> Result<Self> {
        if !Parser::is_component(bytes) {
            bail!("not a component (a core module, or not Wasm at all)");
        }
        Validator::new_with_features(WasmFeatures::all()).validate_all(bytes)?;
        let mut names = Names {
            imports: BTreeSet::new(),
            exports: BTreeSet::new(),
        };
        // Nested modules and components come inline, each between its own Version and End.
        let mut depth = 0usize;
        for payload in Parser::new(0).parse_all(bytes) {
            match payload? {
                Payload::Version { .. } => depth += 1,
                Payload::End(_) => depth -= 1,
                Payload::ComponentImportSection(section) if depth == 1 => {
                    for import in section {
                        let import = import?;
                        if matches!(import.ty, ComponentTypeRef::Instance(_)) {
                            names.imports.insert(import.name.0.to_string());
                        }
                    }
                }
                Payload::ComponentExportSection(section) if depth == 1 => {
                    for export in section {
                        let export = export?;
                        if export.kind == ComponentExternalKind::Instance {
                            names.exports.insert(export.name.0.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(names)
    }
}

/// `a`, `b` for an error message, or "nothing".
fn listed(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        return "nothing".into();
    }
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    quoted.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Imports a log interface from the host and the catalogue from the plug; exports carts.
    const SOCKET: &str = r#"(component
        (import "test:host/log@0.1.0" (instance $log (export "write" (func))))
        (import "test:plug/catalogue@0.1.0" (instance $cat (export "get" (func (result s32)))))
        (alias export $cat "get" (func $get))
        (alias export $log "write" (func $write))
        (instance $carts (export "count" (func $get)) (export "write" (func $write)))
        (export "test:socket/carts@0.1.0" (instance $carts))
    )"#;

    /// Exports the catalogue (with more than the socket asks for); imports the host's log too.
    const PLUG: &str = r#"(component
        (import "test:host/log@0.1.0" (instance $log (export "write" (func))))
        (alias export $log "write" (func $write))
        (core module $m (func (export "get") (result i32) i32.const 7))
        (core instance $i (instantiate $m))
        (func $get (result s32) (canon lift (core func $i "get")))
        (instance $cat (export "get" (func $get)) (export "write" (func $write)))
        (export "test:plug/catalogue@0.1.0" (instance $cat))
    )"#;

    /// Exports something no socket imports.
    const STRANGER: &str = r#"(component
        (core module $m (func (export "f")))
        (core instance $i (instantiate $m))
        (func $f (canon lift (core func $i "f")))
        (instance $other (export "f" (func $f)))
        (export "test:other/thing@0.1.0" (instance $other))
    )"#;

    /// A fresh folder holding each `(file name, WAT)` as a binary component.
    fn files(test: &str, components: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("shop-compose-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, wat) in components {
            std::fs::write(dir.join(name), wat::parse_str(wat).unwrap()).unwrap();
        }
        dir
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn the_plug_fills_the_socket_import_and_the_socket_exports_stay() {
        let dir = files("fills", &[("socket.wasm", SOCKET), ("plug.wasm", PLUG)]);
        let composed = compose(&dir.join("socket.wasm"), &[dir.join("plug.wasm")]).unwrap();

        assert_eq!(composed.filled, set(&["test:plug/catalogue@0.1.0"]));
        let names = Names::parse(&composed.bytes).unwrap();
        // The host's log, imported by both, stays one import of the composition.
        assert_eq!(names.imports, set(&["test:host/log@0.1.0"]));
        assert_eq!(names.exports, set(&["test:socket/carts@0.1.0"]));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_plug_that_fills_no_import_is_an_error() {
        let dir = files(
            "stranger",
            &[("socket.wasm", SOCKET), ("other.wasm", STRANGER)],
        );
        let err = compose(&dir.join("socket.wasm"), &[dir.join("other.wasm")]).unwrap_err();

        let message = format!("{err:#}");
        assert!(
            message.contains("exports none of the instances"),
            "{message}"
        );
        assert!(
            message.contains("(it exports `test:other/thing@0.1.0`)"),
            "{message}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_file_is_named_in_the_error() {
        let dir = files("missing", &[("socket.wasm", SOCKET)]);
        let err = compose(&dir.join("socket.wasm"), &[dir.join("absent.wasm")]).unwrap_err();

        let message = format!("{err:#}");
        assert!(message.starts_with("cannot read plug `"), "{message}");
        assert!(message.contains("absent.wasm"), "{message}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_core_module_is_not_a_socket() {
        let dir = files(
            "module",
            &[("socket.wasm", "(module)"), ("plug.wasm", PLUG)],
        );
        let err = compose(&dir.join("socket.wasm"), &[dir.join("plug.wasm")]).unwrap_err();

        assert!(format!("{err:#}").contains("not a component"), "{err:#}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
