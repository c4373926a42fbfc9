//! The deployment manifests under deploy/: parsed, and their fields that matter checked against
//! the app (spin.toml's variables, the host's health route and flags).

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_yaml::Value;

use crate::helpers::repo_root;

fn documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo_root().join(path)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

/// The app variables of spin.toml that a deployment must give a value (required, or naming a
/// service's database).
fn variables_to_set() -> BTreeSet<String> {
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo_root().join("spin.toml")).unwrap()).unwrap();
    manifest["variables"]
        .as_table()
        .unwrap()
        .iter()
        .filter(|(name, decl)| {
            decl.get("required").and_then(|r| r.as_bool()) == Some(true)
                || name.ends_with("_database")
        })
        .map(|(name, _)| name.clone())
        .collect()
}

#[test]
fn spinapp_runs_the_app_from_a_secret_with_probes_and_limits() {
    let docs = documents("deploy/spinkube/shop.yaml");
    let app = of_kind(&docs, "SpinApp");
    assert_eq!(app["apiVersion"], "core.spinkube.dev/v1alpha1");
    let spec = &app["spec"];
    assert!(str_of(&spec["image"]).contains("shop:"));
    assert_eq!(spec["executor"], "containerd-shim-spin");
    assert!(spec["replicas"].as_u64().unwrap() >= 2);
    for probe in ["liveness", "readiness"] {
        assert_eq!(spec["checks"][probe]["httpGet"]["path"], "/healthz");
    }
    for bound in ["requests", "limits"] {
        assert!(
            spec["resources"][bound]["cpu"].is_string()
                || spec["resources"][bound]["cpu"].is_number()
        );
        assert!(spec["resources"][bound]["memory"].is_string());
    }
    let secrets = of_kind(&documents("deploy/spinkube/secret.example.yaml"), "Secret").clone();
    let given: BTreeSet<String> = spec["variables"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| {
            let secret = &v["valueFrom"]["secretKeyRef"];
            assert_eq!(secret["name"], secrets["metadata"]["name"], "{v:?}");
            let key = str_of(&secret["key"]);
            assert!(
                secrets["stringData"][key].is_string(),
                "the example secret lacks {key}"
            );
            str_of(&v["name"]).to_string()
        })
        .collect();
    assert_eq!(
        given,
        variables_to_set(),
        "every variable a deployment must set, from the secret"
    );
    // Each service's URL names its own schema.
    for (key, value) in secrets["stringData"].as_mapping().unwrap() {
        if let Some(service) = str_of(key).strip_suffix("_database") {
            assert!(
                str_of(value).ends_with(&format!("search_path%3D{service}")),
                "{value:?}"
            );
        }
    }
    let hpa = of_kind(&docs, "HorizontalPodAutoscaler");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        app["metadata"]["name"]
    );
}

#[test]
fn host_deployment_migrates_then_serves_on_its_port_with_probes() {
    let docs = documents("deploy/kubernetes/shop-host.yaml");
    let deployment = of_kind(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"],
        deployment["spec"]["template"]["metadata"]["labels"]
    );
    let migrate = &pod["initContainers"][0];
    assert_eq!(migrate["args"][0], "migrate");
    let shop = &pod["containers"][0];
    assert_eq!(shop["image"], migrate["image"]);
    assert!(str_of(&shop["image"]).contains("shop-host:"));
    let args: Vec<&str> = shop["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(str_of)
        .collect();
    assert_eq!(args[0], "up");
    let listen = args[args.iter().position(|a| *a == "--listen").unwrap() + 1];
    let port = &shop["ports"][0];
    assert_eq!(
        listen,
        format!("0.0.0.0:{}", port["containerPort"].as_u64().unwrap())
    );
    assert!(args.contains(&"--database-url"));
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(shop[probe]["httpGet"]["path"], "/healthz");
        assert_eq!(shop[probe]["httpGet"]["port"], port["name"]);
    }
    let env: Vec<&str> = shop["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| str_of(&e["name"]))
        .collect();
    for name in [
        "DATABASE_URL",
        "SPIN_VARIABLE_JWT_PRIVATE_KEY",
        "SPIN_VARIABLE_JWT_PUBLIC_KEY",
    ] {
        assert!(env.contains(&name), "{name} not in {env:?}");
    }
    assert!(!env.contains(&"SPIN_VARIABLE_JWT_SECRET"), "{env:?}");
    for e in shop["env"].as_sequence().unwrap() {
        assert_eq!(e["valueFrom"]["secretKeyRef"]["name"], "shop-secrets");
    }
    assert!(shop["resources"]["limits"]["memory"].is_string());
    let service = of_kind(&docs, "Service");
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["template"]["metadata"]["labels"]
    );
    assert_eq!(service["spec"]["ports"][0]["targetPort"], port["name"]);
}

/// Only accounts signs tokens: spin.toml gives it the private key, and every service the
/// public key, whichever runtime (Spin, SpinKube or the shop host) serves them.
#[test]
fn only_accounts_is_given_the_private_key() {
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo_root().join("spin.toml")).unwrap()).unwrap();
    for (id, component) in manifest["component"].as_table().unwrap() {
        let variables = component.get("variables").and_then(|v| v.as_table());
        let names = |name: &str| {
            variables.is_some_and(|vars| {
                vars.iter()
                    .any(|(key, value)| key == name || value.as_str().unwrap_or("").contains(name))
            })
        };
        assert_eq!(
            names("jwt_private_key"),
            id == "accounts",
            "component `{id}`"
        );
        // docs and the console verify no token: they serve documents, the API does the rest.
        if !["docs", "console"].contains(&id.as_str()) {
            assert!(
                names("jwt_public_key"),
                "component `{id}` cannot verify tokens"
            );
        }
        assert!(!names("jwt_secret"), "component `{id}`");
    }
}
