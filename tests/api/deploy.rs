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

/// The value after `name` in a container's arguments.
fn flag<'a>(args: &[&'a str], name: &str) -> &'a str {
    let at = args
        .iter()
        .position(|a| *a == name)
        .unwrap_or_else(|| panic!("no {name} in {args:?}"));
    args[at + 1]
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
    // The autoscaler owns the replica count (spin-operator refuses both).
    assert_eq!(spec["enableAutoscaling"], true);
    assert!(
        spec["replicas"].is_null(),
        "replicas beside enableAutoscaling"
    );
    // Liveness the process alone, readiness the database.
    assert_eq!(spec["checks"]["liveness"]["httpGet"]["path"], "/livez");
    assert_eq!(spec["checks"]["readiness"]["httpGet"]["path"], "/healthz");
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
    // Each service's URL is its own role's, as `shop migrate --print-urls` prints it: its own
    // schema, over verified TLS; the provisioning login is nowhere in this secret.
    let mut services = 0;
    for (key, value) in secrets["stringData"].as_mapping().unwrap() {
        let key = str_of(key);
        assert_ne!(
            key, "database_url",
            "the provisioning login in the services' secret"
        );
        if let Some(service) = key.strip_suffix("_database") {
            services += 1;
            let url = url::Url::parse(str_of(value)).unwrap();
            assert_eq!(url.username(), format!("shop_{service}"), "{url}");
            assert!(
                url.query_pairs()
                    .any(|(k, v)| k == "sslmode" && v == "verify-full"),
                "{url}"
            );
            assert!(
                url.as_str().ends_with(&format!("search_path%3D{service}")),
                "{url}"
            );
        }
    }
    assert_eq!(services, 4);
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
    // The serving container never holds the provisioning login: the init container migrates
    // with it, the services log in with their own roles.
    assert!(!args.contains(&"--database-url"), "{args:?}");
    assert!(args.contains(&"--no-migrate"), "{args:?}");
    let provisioning = &migrate["env"][0];
    assert_eq!(provisioning["name"], "DATABASE_URL");
    assert_eq!(
        provisioning["valueFrom"]["secretKeyRef"]["name"],
        "shop-provisioning"
    );
    assert_eq!(shop["readinessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(shop["livenessProbe"]["httpGet"]["path"], "/livez");
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(shop[probe]["httpGet"]["port"], port["name"]);
    }
    // Behind the Service and the ingress, X-Forwarded-For names the client.
    let trusted = flag(&args, "--trusted-proxies");
    assert!(
        !trusted.is_empty() && !trusted.contains("0.0.0.0/0"),
        "{trusted}"
    );
    assert!(flag(&args, "--public-url").starts_with("https://"));
    let env: Vec<&str> = shop["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| str_of(&e["name"]))
        .collect();
    for name in [
        "SPIN_VARIABLE_PRODUCTS_DATABASE",
        "SPIN_VARIABLE_ACCOUNTS_DATABASE",
        "SPIN_VARIABLE_CART_DATABASE",
        "SPIN_VARIABLE_ORDERS_DATABASE",
        "SPIN_VARIABLE_JWT_PRIVATE_KEY",
        "SPIN_VARIABLE_JWT_PUBLIC_KEY",
    ] {
        assert!(env.contains(&name), "{name} not in {env:?}");
    }
    assert!(!env.contains(&"DATABASE_URL"), "{env:?}");
    for e in shop["env"].as_sequence().unwrap() {
        assert_eq!(e["valueFrom"]["secretKeyRef"]["name"], "shop-secrets");
    }
    // The memory limit holds every bound the flags set (the manifest's comment derives it):
    // each request's instances at --max-memory, the body buffer, the heads, the host itself.
    let kib = |flag_name: &str| -> u64 {
        let value = flag(&args, flag_name);
        if let Some(n) = value.strip_suffix("MiB") {
            n.parse::<u64>().unwrap() * 1024
        } else if let Some(n) = value.strip_suffix("KiB") {
            n.parse().unwrap()
        } else {
            panic!("{flag_name} {value}: write it in MiB or KiB")
        }
    };
    let number = |flag_name: &str| -> u64 { flag(&args, flag_name).parse().unwrap() };
    let instances_per_request = 5;
    let host_itself = 128 * 1024;
    let needed_kib =
        number("--max-concurrent-requests") * instances_per_request * kib("--max-memory")
            + kib("--max-body-buffer")
            + number("--max-connections") * kib("--max-header-size")
            + host_itself;
    let needed = needed_kib.div_ceil(1024);
    let limit = str_of(&shop["resources"]["limits"]["memory"]);
    let limit: u64 = limit
        .strip_suffix("Mi")
        .expect("a limit in Mi")
        .parse()
        .unwrap();
    assert!(
        limit >= needed,
        "memory limit {limit}Mi under the {needed}Mi the flags allow"
    );
    assert!(number("--max-concurrent-hashing") >= 1);
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

/// Every manifest of deploy/ against the Kubernetes schemas (PyPI's `kubernetes-validate`,
/// which ships them: no network), strictly (an unknown field is an error); the SpinApp, which
/// it has no schema for, against tests/deploy/spinapp.schema.json (the part of SpinKube's CRD
/// the manifest relies on, and spin-operator's webhook rule). Skipped with a notice without
/// the tool, unless SHOP_REQUIRE_DEPLOY_TOOLS is set (CI).
#[test]
fn manifests_pass_the_kubernetes_schemas() {
    let root = repo_root();
    let manifests: Vec<String> = [
        "deploy/kubernetes/shop-host.yaml",
        "deploy/kubernetes/provisioning.example.yaml",
        "deploy/spinkube/secret.example.yaml",
        "deploy/spinkube/shop.yaml",
    ]
    .iter()
    .map(|p| root.join(p).display().to_string())
    .collect();
    let out = std::process::Command::new("kubernetes-validate")
        .args(["--strict", "--no-warn"])
        .args(&manifests)
        .output();
    let out = match out {
        Ok(out) => out,
        Err(err) => {
            assert!(
                std::env::var_os("SHOP_REQUIRE_DEPLOY_TOOLS").is_none(),
                "kubernetes-validate is required (SHOP_REQUIRE_DEPLOY_TOOLS): {err}"
            );
            eprintln!(
                "\n*** SKIPPING the manifests' schema validation: no kubernetes-validate ({err}); \
                 pip install kubernetes-validate==1.37.0 ***\n"
            );
            return;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kubernetes-validate:\n{text}");
    // Every resource but the SpinApp was checked against a schema.
    let passed = text.matches(" passed for resource ").count();
    assert_eq!(passed, 5, "{text}");

    let schema = root.join("tests/deploy/spinapp.schema.json");
    let check = r#"
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
apps = [d for d in yaml.safe_load_all(open(sys.argv[2])) if d and d.get("kind") == "SpinApp"]
assert len(apps) == 1, apps
errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(apps[0])]
print("\n".join(errors))
sys.exit(1 if errors else 0)
"#;
    let run = |manifest: &str| {
        std::process::Command::new("python3")
            .args(["-c", check])
            .arg(&schema)
            .arg(manifest)
            .output()
            .expect("python3 (kubernetes-validate brings jsonschema and PyYAML)")
    };
    let out = run(&manifests[3]);
    assert!(
        out.status.success(),
        "deploy/spinkube/shop.yaml against the SpinApp schema: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The schema refuses what spin-operator refuses: replicas beside enableAutoscaling, and
    // an unknown field.
    let text = std::fs::read_to_string(&manifests[3]).unwrap();
    for (what, broken) in [
        (
            "replicas with autoscaling",
            text.replace(
                "  enableAutoscaling: true",
                "  enableAutoscaling: true\n  replicas: 3",
            ),
        ),
        (
            "an unknown field",
            text.replace(
                "  enableAutoscaling: true",
                "  enableAutoscaling: true\n  replica: 3",
            ),
        ),
    ] {
        let path = std::env::temp_dir().join(format!("spinapp-{}.yaml", std::process::id()));
        std::fs::write(&path, broken).unwrap();
        let out = run(&path.display().to_string());
        let _ = std::fs::remove_file(&path);
        assert!(!out.status.success(), "the schema let {what} through");
    }
}
