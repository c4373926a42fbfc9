//! Operator commands that run inside a component rather than beside it: `shop createsuperuser`
//! calls the accounts component's `shop:accounts/admin` export, so the rules for users (validation,
//! password hashing, storage) live in one place, whatever runtime serves the app.

use anyhow::{anyhow, bail, Context, Result};

use crate::app::{App, ServedComponent};
use crate::runtime::store::HostState;

/// The interface the accounts component exports for operators.
pub const ACCOUNTS_ADMIN: &str = "shop:accounts/admin@0.1.0";

/// Makes (or promotes) a staff user through the component that exports [`ACCOUNTS_ADMIN`];
/// returns the user's id.
pub async fn run(app: &App, username: &str, email: &str, password: &str) -> Result<i64> {
    let component = exporter(app, ACCOUNTS_ADMIN)?;
    let id = &component.config.id;
    let state = HostState::new(component.config.clone(), app.databases.clone(), app.limits);
    let mut store = crate::runtime::store::store(&app.engine, state);
    let instance = component
        .current()
        .pre
        .instance_pre()
        .instantiate_async(&mut store)
        .await
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot instantiate component `{id}`"))?;
    let interface = instance
        .get_export_index(&mut store, None, ACCOUNTS_ADMIN)
        .ok_or_else(|| anyhow!("component `{id}` does not export {ACCOUNTS_ADMIN}"))?;
    let func = instance
        .get_export_index(&mut store, Some(&interface), "create-superuser")
        .ok_or_else(|| anyhow!("component `{id}`: {ACCOUNTS_ADMIN} has no `create-superuser`"))?;
    let create = instance
        .get_typed_func::<(&str, &str, &str), (Result<i64, String>,)>(&mut store, func)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("component `{id}`: `create-superuser` has the wrong type"))?;
    let (outcome,) = create
        .call_async(&mut store, (username, email, password))
        .await
        .map_err(anyhow::Error::from)
        .with_context(|| format!("component `{id}` failed in `create-superuser`"))?;
    outcome.map_err(|refusal| anyhow!("{refusal}"))
}

/// The one component of the app that exports `interface`.
fn exporter<'a>(app: &'a App, interface: &str) -> Result<&'a ServedComponent> {
    let mut found = app.components.iter().filter(|c| {
        let ty = c.current().pre.instance_pre().component().component_type();
        let exports_it = ty.exports(&app.engine).any(|(name, _)| name == interface);
        exports_it
    });
    match (found.next(), found.next()) {
        (Some(component), None) => Ok(component),
        (None, _) => bail!(
            "no component of {} exports {interface}: is the accounts component in the manifest and built?",
            app.manifest.path.display()
        ),
        (Some(a), Some(b)) => bail!(
            "components `{}` and `{}` both export {interface}; keep one",
            a.config.id,
            b.config.id
        ),
    }
}
