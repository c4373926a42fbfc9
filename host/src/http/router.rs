//! Spin's HTTP routing: exact routes (`/healthz`) and wildcards (`/api/products/...`), the
//! most specific match wins.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use crate::config::manifest::Manifest;

/// One route of the app, bound to the index of the component that serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The route as written in the manifest, e.g. `/api/products/...`.
    pub raw: String,
    /// The route without its wildcard suffix, e.g. `/api/products` (Spin's component route).
    pub prefix: String,
    /// Whether the route ends in `/...` and so matches everything below its prefix.
    pub wildcard: bool,
    /// The index of the component that serves it.
    pub component: usize,
}

/// A request path matched to a route.
#[derive(Debug, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    /// The route that matched.
    pub route: &'a Route,
    /// The part of the path after the route's prefix (Spin's `spin-path-info`).
    pub path_info: &'a str,
}

/// The routes of the app, most specific first.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Route {
    /// Parses a manifest route for the component at index `component`.
    pub fn parse(raw: &str, component: usize) -> Result<Self> {
        if !raw.starts_with('/') {
            bail!("route `{raw}` must start with `/`");
        }
        let (prefix, wildcard) = match raw.strip_suffix("/...") {
            Some(prefix) => (prefix, true),
            None if raw.contains("...") => {
                bail!("route `{raw}`: `...` is allowed only as the last segment")
            }
            None => (raw, false),
        };
        let prefix = if prefix.len() > 1 {
            prefix.trim_end_matches('/')
        } else {
            prefix
        };
        Ok(Self {
            raw: raw.to_string(),
            prefix: if wildcard && prefix == "/" {
                String::new()
            } else {
                prefix.to_string()
            },
            wildcard,
            component,
        })
    }

    fn matches<'p>(&self, path: &'p str) -> Option<&'p str> {
        if !self.wildcard {
            return (path == self.prefix).then_some("");
        }
        let rest = path.strip_prefix(self.prefix.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }

    /// Exact routes first, then wildcards with longer prefixes first.
    fn specificity(&self) -> (bool, usize) {
        (!self.wildcard, self.prefix.len())
    }
}

impl Router {
    /// The routes of `manifest`'s HTTP triggers, for the served components `ids` (a route names
    /// its component by index in `ids`).
    pub fn from_manifest(manifest: &Manifest, ids: &[&str]) -> Result<Self> {
        let index: BTreeMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let mut routes = Vec::new();
        for trigger in &manifest.http_triggers {
            let Some(route) = &trigger.route else {
                continue;
            };
            if route == "/healthz" || route == "/livez" {
                // The host answers its probes itself (readiness: every database of the app); the
                // routes are there for Spin, which has no probes of its own.
                continue;
            }
            let component = index[trigger.component.as_str()];
            routes.push(
                Route::parse(route, component)
                    .with_context(|| format!("invalid manifest {}", manifest.path.display()))?,
            );
        }
        Self::new(routes).with_context(|| format!("invalid manifest {}", manifest.path.display()))
    }

    /// Builds a router; two identical routes are an error.
    pub fn new(mut routes: Vec<Route>) -> Result<Self> {
        routes.sort_by_key(|route| std::cmp::Reverse(route.specificity()));
        for pair in routes.windows(2) {
            if pair[0].wildcard == pair[1].wildcard && pair[0].prefix == pair[1].prefix {
                bail!(
                    "routes `{}` and `{}` are the same route",
                    pair[0].raw,
                    pair[1].raw
                );
            }
        }
        Ok(Self { routes })
    }

    /// The most specific route matching `path`, if any.
    pub fn route<'a>(&'a self, path: &'a str) -> Option<RouteMatch<'a>> {
        self.routes.iter().find_map(|route| {
            route
                .matches(path)
                .map(|path_info| RouteMatch { route, path_info })
        })
    }

    /// The routes, most specific first.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[&str]) -> Router {
        Router::new(
            routes
                .iter()
                .enumerate()
                .map(|(i, raw)| Route::parse(raw, i).unwrap())
                .collect(),
        )
        .unwrap()
    }

    fn matched(router: &Router, path: &str) -> Option<(usize, String)> {
        router
            .route(path)
            .map(|m| (m.route.component, m.path_info.to_string()))
    }

    #[test]
    fn wildcard_matches_its_prefix_and_below() {
        let r = router(&["/api/products/..."]);
        assert_eq!(matched(&r, "/api/products"), Some((0, "".into())));
        assert_eq!(matched(&r, "/api/products/"), Some((0, "/".into())));
        assert_eq!(matched(&r, "/api/products/7/"), Some((0, "/7/".into())));
        assert_eq!(matched(&r, "/api/productsx"), None);
        assert_eq!(matched(&r, "/api"), None);
    }

    #[test]
    fn most_specific_route_wins() {
        let r = router(&[
            "/...",
            "/api/...",
            "/api/products/...",
            "/api/products/special",
        ]);
        assert_eq!(matched(&r, "/api/products/special"), Some((3, "".into())));
        assert_eq!(matched(&r, "/api/products/1"), Some((2, "/1".into())));
        assert_eq!(matched(&r, "/api/carts/"), Some((1, "/carts/".into())));
        assert_eq!(matched(&r, "/index.html"), Some((0, "/index.html".into())));
    }

    #[test]
    fn exact_route_matches_only_itself() {
        let r = router(&["/hello"]);
        assert_eq!(matched(&r, "/hello"), Some((0, "".into())));
        assert_eq!(matched(&r, "/hello/"), None);
        assert_eq!(matched(&r, "/hello/x"), None);
    }

    #[test]
    fn component_route_drops_the_wildcard() {
        let route = Route::parse("/api/products/...", 0).unwrap();
        assert_eq!(route.prefix, "/api/products");
        assert!(route.wildcard);
        assert!(Route::parse("api", 0).is_err());
        assert!(Route::parse("/a/.../b", 0).is_err());
    }

    #[test]
    fn duplicate_routes_are_rejected() {
        let routes = vec![
            Route::parse("/a/...", 0).unwrap(),
            Route::parse("/a/...", 1).unwrap(),
        ];
        assert!(Router::new(routes).is_err());
    }
}
